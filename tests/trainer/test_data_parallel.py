"""Data-parallel roles (actor.replicas, critic.replicas): two workers per trained role make the
update one worker makes, their checkpoints resume with another number of workers, and the inline
backend refuses them.

Tolerance: the workers' gradients are summed in another order than one worker accumulates them,
so results agree to float32 rounding, not bit for bit: metrics to rtol 1e-5 and weights to atol
1e-5 after two updates at lr 1e-3 (measured: 5e-7 for the actor, 5e-8 for a critic). One metric
is split-dependent by definition and left out: ``actor/adv_std`` averages per-micro-batch
standard deviations, and the workers' micro-batches are other sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from asyppo.checkpoint import complete_checkpoints
from asyppo.config import load_train_config
from asyppo.trainer import Trainer
from safetensors.numpy import load_file
from test_local_backend import assert_nothing_left, roles_of, run, start_cli, wait_for_steps
from trainer_assets import Assets

TWO_WORKERS = ("runtime.backend=local", "actor.replicas=2", "critic.replicas=2")
SPLIT_DEPENDENT = ("time/", "perf/", "actor/adv_std")
COMMON = ("trainer.steps=2", "trainer.save_every=1", "trainer.export_hf=false", "algo.name=asyppo")


@dataclass
class Runs:
    one: Path
    two: Path
    one_history: list[dict[str, float]]
    two_history: list[dict[str, float]]


@pytest.fixture(scope="module")
def runs(assets: Assets, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("data_parallel")
    one = run(assets.overrides(root / "one", *COMMON, "runtime.backend=inline"))
    two = run(assets.overrides(root / "two", *COMMON, *TWO_WORKERS))
    return Runs(root / "one", root / "two", one, two)


def different_metrics(a: dict[str, float], b: dict[str, float]) -> list[str]:
    keys = {k for k in a.keys() | b.keys() if not k.startswith(SPLIT_DEPENDENT)}
    return sorted(k for k in keys if not np.isclose(a.get(k, np.nan), b.get(k, np.nan), rtol=1e-5, atol=1e-7))


def weights(run_dir: Path, step: int, role: str) -> dict[str, np.ndarray]:
    step_dir = {int(p.name.split("_")[1]): p for p in complete_checkpoints(run_dir / "checkpoints")}[step]
    return load_file(str(step_dir / role / "modules" / "model.safetensors"))


def test_two_workers_per_role_make_one_workers_updates(runs: Runs) -> None:
    for step, (a, b) in enumerate(zip(runs.one_history, runs.two_history, strict=True), start=1):
        assert different_metrics(a, b) == [], f"step {step}"
    for role in ("actor", "critic0", "critic1"):
        one, two = weights(runs.one, 2, role), weights(runs.two, 2, role)
        moved = max(float(np.abs(one[k] - weights(runs.one, 1, role)[k]).max()) for k in one)
        assert moved > 1e-4, role  # the updates did move the weights: the comparison means something
        for name, tensor in one.items():
            np.testing.assert_allclose(two[name], tensor, rtol=0, atol=1e-5, err_msg=f"{role}: {name}")


def test_a_two_worker_checkpoint_resumes_with_one_worker(runs: Runs, assets: Assets, tmp_path: Path) -> None:
    step_1 = min(complete_checkpoints(runs.two / "checkpoints"))
    overrides = assets.overrides(tmp_path / "resumed", *COMMON, "runtime.backend=inline")
    trainer = Trainer(load_train_config(None, overrides), resume=step_1)
    try:
        resumed = trainer.run().history
    finally:
        trainer.close()
    assert [h["step"] for h in resumed] == [2.0]
    assert different_metrics(resumed[0], runs.two_history[1]) == []


def test_the_inline_backend_refuses_data_parallel_workers(assets: Assets, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"critic.replicas: 2 data-parallel workers need a process each.*runtime.backend=local"):
        load_train_config(None, assets.overrides(tmp_path, "critic.replicas=2", "runtime.backend=inline"))


def test_a_worker_killed_mid_run_stops_the_run_naming_it(assets: Assets, tmp_path: Path) -> None:
    # Its peers may be blocked in a collective waiting for it: the run must still stop, and clean.
    driver = start_cli(assets, tmp_path / "run", "actor.replicas=2")
    try:
        wait_for_steps(tmp_path / "run", driver, 1)
        roles = roles_of(driver)
        roles["actor.rank1"].kill()
        _, stderr = driver.communicate(timeout=120)
        assert driver.returncode not in (0, None)
        assert "actor.rank1" in stderr and "killed by signal 9" in stderr
        assert_nothing_left(list(roles.values()), driver.pid)
    finally:
        if driver.poll() is None:
            driver.kill()
