"""Resume continues a run exactly; the exported actor loads with transformers."""

from __future__ import annotations

from pathlib import Path

import torch
from asyppo.config import load_train_config
from asyppo.trainer import Trainer
from trainer_assets import Assets
from transformers import AutoModelForCausalLM


def run(cfg_overrides: list[str], *, stop_after: int | None = None, resume: bool = False) -> tuple[dict, dict]:
    trainer = Trainer(load_train_config(None, cfg_overrides), resume=resume)
    try:
        result = trainer.run(stop_after=stop_after)
        weights = {k: v.clone() for k, v in trainer.roles.actor.local.model.state_dict().items()}
        critic = {k: v.clone() for k, v in trainer.roles.critics[0].local.model.state_dict().items()}
        return {"history": result.history, "actor": weights, "critic": critic}, {"result": result}
    finally:
        trainer.close()


def test_a_resumed_run_matches_the_uninterrupted_one(assets: Assets, tmp_path: Path) -> None:
    common = ["trainer.steps=3", "trainer.save_every=2", "trainer.export_hf=false"]
    straight, _ = run(assets.overrides(tmp_path / "straight", *common))
    run(assets.overrides(tmp_path / "split", *common), stop_after=2)
    resumed, _ = run(assets.overrides(tmp_path / "split", *common), resume=True)
    assert [h["step"] for h in resumed["history"]] == [3.0]
    for key in ("reward/mean", "actor/loss", "critic0/loss"):
        assert abs(resumed["history"][0][key] - straight["history"][-1][key]) < 1e-5, key
    for name, tensor in straight["actor"].items():
        torch.testing.assert_close(resumed["actor"][name], tensor, atol=1e-6, rtol=1e-5)
    for name, tensor in straight["critic"].items():
        torch.testing.assert_close(resumed["critic"][name], tensor, atol=1e-6, rtol=1e-5)


def test_the_exported_actor_loads_and_equals_the_trained_one(assets: Assets, tmp_path: Path) -> None:
    trained, extra = run(assets.overrides(tmp_path / "run", "trainer.steps=1"))
    export = extra["result"].export
    assert export is not None and (export / "config.json").is_file()
    loaded = AutoModelForCausalLM.from_pretrained(export)
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, trained["actor"][name])
