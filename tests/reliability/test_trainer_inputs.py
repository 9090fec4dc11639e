"""The trainer end to end on bad inputs: a 50 MB prompt stops it before any model loads (or is
dropped with data.long_prompts=drop), and a reward module that hangs or exits at import stops
the first step with the worker's report instead of hanging or killing the trainer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from asyppo.config import load_train_config
from asyppo.data import PromptTooLongError
from asyppo.rewards import RewardError
from asyppo.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parents[1] / "trainer"))
from trainer_assets import Assets, build_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return build_assets(tmp_path_factory.mktemp("reliability_assets"))


def with_giant_prompt(assets: Assets, path: Path) -> Path:
    rows = assets.train.read_text().splitlines()
    rows.insert(3, json.dumps({"prompt": "7" * (50 * 1024 * 1024), "answer": "7"}))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_50mb_prompt_stops_the_trainer_naming_the_row(assets: Assets, tmp_path: Path) -> None:
    train = with_giant_prompt(assets, tmp_path / "train.jsonl")
    cfg = load_train_config(None, assets.overrides(tmp_path / "run", f"data.train={train}"))
    with pytest.raises(PromptTooLongError, match=rf"data.train \({train}\): 1 of 33 prompts .* the first is {train}:4: "):
        Trainer(cfg)


def test_with_drop_the_trainer_leaves_it_out(assets: Assets, tmp_path: Path) -> None:
    train = with_giant_prompt(assets, tmp_path / "train.jsonl")
    cfg = load_train_config(None, assets.overrides(tmp_path / "run", f"data.train={train}", "data.long_prompts=drop"))
    trainer = Trainer(cfg)
    try:
        assert len(trainer.datasets.train) == 32 and 3 not in trainer.train_prompts
        assert sorted(trainer.train_prompts) == sorted(r.index for r in trainer.datasets.train)
    finally:
        trainer.close()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("import time\ntime.sleep(60)\n", r"did not import reward.user_fn .* within 0.5s"),
        ("import os\nos._exit(3)\n", r"exited \(exit code 3\) before it could import reward.user_fn"),
    ],
    ids=["hangs", "exits"],
)
def test_a_reward_module_that_hangs_or_exits_at_import_stops_the_step(
    assets: Assets, tmp_path: Path, body: str, expected: str
) -> None:
    module = tmp_path / "bad_reward.py"
    module.write_text(body + "def score(response, answer):\n    return 1.0\n")
    cfg = load_train_config(
        None, assets.overrides(tmp_path / "run", f"reward.user_fn={module}:score", "reward.timeout_s=0.5")
    )
    # The trainer process never imports the module; the failure surfaces when the reward worker
    # is first waited for (at start-up or at the first scoring).
    with pytest.raises(RewardError, match=expected):
        trainer = Trainer(cfg)
        try:
            trainer.train_step()
        finally:
            trainer.close()
