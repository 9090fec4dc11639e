"""The ray backend inside the trainer: the same metrics as inline step for step, on one local Ray
cluster started for this module (CPU, tiny models)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from asyppo.config import load_train_config
from asyppo.trainer import Trainer
from test_data_parallel import different_metrics
from test_local_backend import run, same_metrics
from trainer_assets import Assets

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    """One local cluster for the module (starting one takes seconds); the runtime joins it."""
    ray.init(num_cpus=8, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("algo", ["asyppo", "grpo"])
def test_ray_reproduces_inline_step_for_step(algo: str, assets: Assets, tmp_path: Path) -> None:
    common = [f"algo.name={algo}", "trainer.steps=3"]
    inline = run(assets.overrides(tmp_path / "inline", *common, "runtime.backend=inline"), steps=3)
    on_ray = run(assets.overrides(tmp_path / "ray", *common, "runtime.backend=ray"), steps=3)
    for step, (a, b) in enumerate(zip(inline, on_ray, strict=True), start=1):
        assert same_metrics(a, b) == [], f"step {step}"
    assert on_ray[-1]["perf/roles_peak_rss_mb"] > 0  # the roles run in processes of this node


def test_a_run_on_ray_finishes_with_a_checkpoint_and_an_export(assets: Assets, tmp_path: Path) -> None:
    overrides = assets.overrides(tmp_path / "run", "runtime.backend=ray", "runtime.colocate_actor_rollout=false")
    trainer = Trainer(load_train_config(None, overrides))
    try:
        result = trainer.run()
    finally:
        trainer.close()
    assert result.steps == 2 and result.checkpoint is not None and result.export is not None
    assert (result.export / "config.json").is_file()


def test_data_parallel_workers_on_ray_make_one_workers_updates(assets: Assets, tmp_path: Path) -> None:
    common = ["trainer.steps=2", "algo.name=asyppo"]
    inline = run(assets.overrides(tmp_path / "inline", *common, "runtime.backend=inline"), steps=2)
    workers = ["runtime.backend=ray", "actor.replicas=2", "critic.replicas=2"]
    on_ray = run(assets.overrides(tmp_path / "ray", *common, *workers), steps=2)
    for step, (a, b) in enumerate(zip(inline, on_ray, strict=True), start=1):
        assert different_metrics(a, b) == [], f"step {step}"
    assert "perf/peak_rss_mb_actor.rank1" in on_ray[-1]  # the second actor worker is a process of its own
