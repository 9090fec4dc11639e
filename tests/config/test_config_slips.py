"""Config slips that used to pass silently: duplicate YAML keys, booleans for numbers, mask ratios
that cannot both hold, seeds numpy cannot take."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from asyppo.config import ConfigError, load_train_config
from asyppo.config.loader import load_config
from pydantic import BaseModel


def test_a_duplicate_yaml_key_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("trainer:\n  steps: 3\n  seed: 1\n  steps: 5\n")
    with pytest.raises(ConfigError, match=rf"{path}:4: duplicate key trainer.steps \(first set on line 2\)"):
        load_train_config(str(path))


def test_a_duplicate_section_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("rollout:\n  n: 2\ntrainer:\n  steps: 3\nrollout:\n  n: 4\n")
    with pytest.raises(ConfigError, match=r":5: duplicate key rollout \(first set on line 1\)"):
        load_train_config(str(path))


def test_the_same_key_in_two_sections_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("actor:\n  optim:\n    lr: 0.1\ncritic:\n  optim:\n    lr: 0.2\n")
    cfg = load_train_config(str(path))
    assert (cfg.actor.optim.lr, cfg.critic.optim.lr) == (0.1, 0.2)


@pytest.mark.parametrize("override", ["trainer.steps=true", "algo.clip_high=false", "data.eval_limit=true"])
def test_a_boolean_for_a_number_is_refused(override: str) -> None:
    key = override.partition("=")[0]
    with pytest.raises(ConfigError, match=rf"override '{override}': {key}: expected a number, not a boolean"):
        load_train_config(None, [override])


def test_a_boolean_for_a_number_in_a_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("trainer:\n  steps: yes\n")
    with pytest.raises(ConfigError, match=rf"{path}:2: trainer.steps: expected a number, not a boolean \(got True\)"):
        load_train_config(str(path))


def test_booleans_still_set_boolean_fields() -> None:
    cfg = load_train_config(None, ["trainer.export_hf=false", "algo.dynamic_sampling=true"])
    assert (cfg.trainer.export_hf, cfg.algo.dynamic_sampling) == (False, True)


def test_mask_ratios_summing_past_one_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"adv_mask_ratio \+ ent_filter_ratio must be at most 1.*0.7 \+ 0.4"):
        load_train_config(None, ["algo.adv_mask_ratio=0.7", "algo.ent_filter_ratio=0.4"])
    cfg = load_train_config(None, ["algo.adv_mask_ratio=0.6", "algo.ent_filter_ratio=0.4"])
    assert cfg.algo.adv_mask_ratio + cfg.algo.ent_filter_ratio == 1.0


@pytest.mark.parametrize("seed", [-1, 2**32, 10**30])
def test_a_seed_outside_numpys_range_is_refused(seed: int) -> None:
    with pytest.raises(ConfigError, match=rf"trainer.seed must be in \[0, 2\*\*32 - 1\], got {seed}"):
        load_train_config(None, [f"trainer.seed={seed}"])


def test_the_extreme_valid_seeds_load() -> None:
    assert load_train_config(None, [f"trainer.seed={2**32 - 1}"]).trainer.seed == 2**32 - 1
    assert load_train_config(None, ["trainer.seed=0"]).trainer.seed == 0


def test_an_int_literal_refuses_a_boolean_too() -> None:
    # true == 1 in Python, so a Literal[0, 1] field would take it as 1.
    class Section(BaseModel):
        level: Literal[0, 1] = 0
        flag: Literal[True, "auto"] = "auto"

    class Root(BaseModel):
        section: Section = Section()

    with pytest.raises(ConfigError, match="section.level: expected a number, not a boolean"):
        load_config(Root, None, ["section.level=true"])
    assert load_config(Root, None, ["section.flag=true"]).section.flag is True
