"""Bad input fails early and clearly; a reward that fails on every response stops the step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asyppo.config import ConfigError, load_train_config
from asyppo.rewards import RewardError
from asyppo.trainer import Trainer
from trainer_assets import Assets


def test_bad_config_key_fails_before_anything_loads(assets: Assets, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean trainer.ppo_epochs"):
        load_train_config(None, assets.overrides(tmp_path, "trainer.ppo_epoch=2"))


def test_bad_config_type_names_the_key(assets: Assets, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rollout.max_new_tokens"):
        load_train_config(None, assets.overrides(tmp_path, "rollout.max_new_tokens=lots"))


def test_a_malformed_dataset_row_names_file_and_line(assets: Assets, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "1+1=", "answer": "2"}) + "\n" + json.dumps({"prompt": "2+2="}) + "\n")
    cfg = load_train_config(None, assets.overrides(tmp_path / "run", f"data.train={bad}"))
    with pytest.raises(ValueError, match=rf"{bad.name}:2.*answer"):
        Trainer(cfg)


def test_a_critic_with_another_vocabulary_is_refused(assets: Assets, tmp_path: Path) -> None:
    cfg = load_train_config(None, assets.overrides(tmp_path / "run", f"critic.path={assets.foreign_critic}"))
    with pytest.raises(ValueError, match="tokenizer differs from the actor's") as refused:
        Trainer(cfg)
    assert "critic.init_from_actor_layers=N" in str(refused.value)  # and the way out


def test_own_training_data_is_not_evaluated_on_the_toy_sums(assets: Assets, tmp_path: Path) -> None:
    own = [f"data.train={assets.train}", f"trainer.output_dir={tmp_path}"]
    with pytest.raises(ConfigError, match=r"data.eval is still the embedded toy sums .* data.eval=null"):
        load_train_config(None, own)
    assert load_train_config(None, [*own, "data.eval=null"]).data.eval is None
    assert load_train_config(None, ["data.train=builtin:toy-train"]).data.eval == "builtin:toy-eval"


def test_a_reward_that_fails_on_every_response_stops_the_step(assets: Assets, tmp_path: Path) -> None:
    # Scoring every response 0 would train on nothing but noise; a partly failing reward is
    # counted instead (tests/rewards/test_runner.py).
    cfg = load_train_config(
        None, assets.overrides(tmp_path / "run", f"reward.user_fn={assets.rewards}:explode", "trainer.steps=1")
    )
    trainer = Trainer(cfg)
    try:
        with pytest.raises(RewardError, match=r"all 16 responses .* RuntimeError: this reward always fails"):
            trainer.train_step()
    finally:
        trainer.close()
