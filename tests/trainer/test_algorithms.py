"""Two training steps of every algorithm preset on tiny random models: finite losses, the actor
and every critic actually updated, metrics written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from asyppo.algos import PRESETS
from asyppo.config import load_train_config
from asyppo.trainer import Trainer
from trainer_assets import Assets


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("algo", sorted(PRESETS))
def test_two_steps_update_every_model_and_log_finite_metrics(algo: str, assets: Assets, tmp_path: Path) -> None:
    cfg = load_train_config(None, assets.overrides(tmp_path / "run", f"algo.name={algo}"))
    trainer = Trainer(cfg)
    try:
        actor = trainer.roles.actor.local.model
        critics = [c.local.model for c in trainer.roles.critics]
        assert len(critics) == (2 if cfg.algo.uses_critic else 0)
        before = [snapshot(actor), *map(snapshot, critics)]
        result = trainer.run()
        assert changed(before[0], actor), "actor weights did not change"
        for m, critic in enumerate(critics):
            assert changed(before[m + 1], critic), f"critic {m} weights did not change"
        last = result.history[-1]
        assert np.isfinite(last["actor/loss"]) and np.isfinite(last["actor/grad_norm"])
        for m in range(len(critics)):
            assert np.isfinite(last[f"critic{m}/loss"])
    finally:
        trainer.close()
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "reward/mean" in x] == [1, 2]
    assert any("eval/accuracy" in x for x in lines)


@pytest.mark.parametrize("algo", ["asyppo", "grpo"])  # KL folded into the reward / as a loss term
def test_a_kl_penalty_spawns_a_frozen_reference(algo: str, assets: Assets, tmp_path: Path) -> None:
    cfg = load_train_config(None, assets.overrides(tmp_path / "run", f"algo.name={algo}", "algo.kl_coef=0.1",
                                                   "trainer.steps=1"))
    trainer = Trainer(cfg)
    try:
        assert trainer.roles.reference is not None
        reference = trainer.roles.reference.local.model
        before = snapshot(reference)
        metrics = trainer.train_step()
        assert not changed(before, reference)
        assert np.isfinite(metrics["actor/loss"])
    finally:
        trainer.close()
