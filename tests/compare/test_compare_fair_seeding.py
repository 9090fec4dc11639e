"""A fair comparison needs every method to see the same first rollout for the same seed: building
critics (AsyPPO, PPO) must not consume the random state generation draws from (GRPO builds none)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from asyppo.config import load_train_config
from asyppo.trainer import Trainer
from compare_assets import TinyAssets


def first_rollout(tiny: TinyAssets, out: Path, *extra: str) -> tuple[list[list[int]], np.ndarray]:
    cfg = load_train_config(None, tiny.overrides(f"trainer.output_dir={out}", "trainer.seed=7", *extra))
    trainer = Trainer(cfg)
    try:
        pending = trainer._start_generation()
        out_batch, _ = trainer._collect(pending)
        return pending.prompt_ids, np.asarray(out_batch.token_ids).copy()
    finally:
        trainer.close()


@pytest.mark.parametrize("other", [
    ("algo.name=asyppo",),
    ("algo.name=ppo", "critic.count=1", "critic.init_from_actor_layers=1"),
])
def test_grpo_and_critic_methods_sample_the_same_first_rollout(tiny: TinyAssets, tmp_path: Path,
                                                               other: tuple[str, ...]) -> None:
    grpo = first_rollout(tiny, tmp_path / "grpo", "algo.name=grpo", "rollout.temperature=1.0")
    critic = first_rollout(tiny, tmp_path / "critic", *other, "rollout.temperature=1.0")
    assert grpo[0] == critic[0]  # the same prompts
    np.testing.assert_array_equal(grpo[1], critic[1])  # the same sampled tokens
