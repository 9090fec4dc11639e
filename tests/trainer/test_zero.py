"""DeepSpeed ZeRO (actor.zero_stage, critic.zero_stage) on the CPU, two workers per role: ZeRO-2
and ZeRO-3 make the updates of one plain worker, their checkpoints resume without DeepSpeed and a
plain checkpoint resumes under ZeRO with two workers, and the HF export holds the whole weights.

Tolerances as in test_data_parallel.py (the same float32 reasoning; measured: weights within
5e-7 after two updates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("deepspeed")

from asyppo.checkpoint import complete_checkpoints
from asyppo.config import load_train_config
from asyppo.trainer import Trainer
from safetensors.numpy import load_file
from test_data_parallel import different_metrics, weights
from test_local_backend import run
from trainer_assets import Assets

pytestmark = pytest.mark.deepspeed

COMMON = ("trainer.steps=2", "trainer.save_every=1", "algo.name=asyppo")


def zero(stage: int, critic_workers: int = 1) -> tuple[str, ...]:
    return ("runtime.backend=local", "actor.replicas=2", f"actor.zero_stage={stage}",
            f"critic.replicas={critic_workers}", f"critic.zero_stage={stage}")


@pytest.fixture(scope="module")
def plain(assets: Assets, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, float]]]:
    out = tmp_path_factory.mktemp("zero") / "plain"
    return out, run(assets.overrides(out, *COMMON, "runtime.backend=inline"))


def same_weights(run: Path, reference: Path) -> None:
    """The weights of every trained role after step 2 agree (module docstring's tolerance)."""
    for role in ("actor", "critic0", "critic1"):
        theirs = weights(reference, 2, role)
        for name, tensor in weights(run, 2, role).items():
            np.testing.assert_allclose(tensor, theirs[name], rtol=0, atol=1e-5, err_msg=f"{role}: {name}")


def resumed_from(step_dir: Path, overrides: list[str]) -> list[dict[str, float]]:
    trainer = Trainer(load_train_config(None, overrides), resume=step_dir)
    try:
        return trainer.run().history
    finally:
        trainer.close()


@pytest.mark.parametrize(("stage", "critic_workers"), [(2, 1), (3, 2)])
def test_zero_makes_one_plain_workers_updates_and_resumes_without_deepspeed(
    stage: int, critic_workers: int, plain: tuple[Path, list[dict[str, float]]], assets: Assets, tmp_path: Path
) -> None:
    plain_dir, plain_history = plain
    history = run(assets.overrides(tmp_path / "zero", *COMMON, *zero(stage, critic_workers)))
    for step, (a, b) in enumerate(zip(plain_history, history, strict=True), start=1):
        assert different_metrics(a, b) == [], f"step {step}"
    same_weights(tmp_path / "zero", plain_dir)
    export = load_file(str(tmp_path / "zero" / "hf_export" / "model.safetensors"))
    for name, tensor in export.items():  # whole weights, gathered from ZeRO-3's partitions
        np.testing.assert_allclose(tensor, weights(plain_dir, 2, "actor").get(name, tensor), atol=1e-5)
    assert all(t.size > 0 for t in export.values())
    step_1 = min(complete_checkpoints(tmp_path / "zero" / "checkpoints"))
    again = resumed_from(step_1, assets.overrides(tmp_path / "resumed", *COMMON, "runtime.backend=inline"))
    assert [h["step"] for h in again] == [2.0] and different_metrics(again[0], history[1]) == []
    same_weights(tmp_path / "resumed", tmp_path / "zero")  # the optimizer state came back too


def test_a_plain_checkpoint_resumes_under_zero_with_two_workers(
    plain: tuple[Path, list[dict[str, float]]], assets: Assets, tmp_path: Path
) -> None:
    plain_dir, plain_history = plain
    step_1 = min(complete_checkpoints(plain_dir / "checkpoints"))
    again = resumed_from(step_1, assets.overrides(tmp_path / "resumed", *COMMON, *zero(3, 2)))
    assert [h["step"] for h in again] == [2.0] and different_metrics(again[0], plain_history[1]) == []
    same_weights(tmp_path / "resumed", plain_dir)  # the optimizer state came back too


def test_the_inline_backend_refuses_zero(assets: Assets, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"actor.zero_stage: DeepSpeed runs the role in a process group"):
        load_train_config(None, assets.overrides(tmp_path, "actor.zero_stage=2", "runtime.backend=inline"))
