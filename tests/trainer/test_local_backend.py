"""The local backend inside the trainer: the same metrics as inline step for step, checkpoints
that resume on either backend, asynchronous generation, and faults that stop the run cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from asyppo.checkpoint import latest_checkpoint
from asyppo.config import load_train_config
from asyppo.engine.arena import segment_directory
from asyppo.trainer import Trainer
from safetensors.numpy import load_file
from trainer_assets import Assets

DEADLINE_S = 30.0  # bounds a hang; nothing is timed against it
SKIP = ("time/", "perf/")


def run(overrides: list[str], *, steps: int | None = None, resume: bool = False) -> list[dict[str, float]]:
    trainer = Trainer(load_train_config(None, overrides), resume=resume)
    try:
        return [trainer.train_step() for _ in range(steps)] if steps else trainer.run().history
    finally:
        trainer.close()


def same_metrics(a: dict[str, float], b: dict[str, float]) -> list[str]:
    """Keys whose values differ (timings and memory excluded)."""
    keys = {k for k in a.keys() | b.keys() if not k.startswith(SKIP)}
    return sorted(k for k in keys if not np.isclose(a.get(k, np.nan), b.get(k, np.nan), rtol=0, atol=0, equal_nan=True))


def actor_weights(run_dir: Path) -> dict[str, np.ndarray]:
    found = latest_checkpoint(run_dir / "checkpoints")
    assert found is not None
    return load_file(str(found / "actor" / "modules" / "model.safetensors"))


@pytest.mark.parametrize("algo", ["asyppo", "ppo", "grpo"])
def test_local_reproduces_inline_step_for_step(algo: str, assets: Assets, tmp_path: Path) -> None:
    common = [f"algo.name={algo}", "trainer.steps=4"]
    inline = run(assets.overrides(tmp_path / "inline", *common, "runtime.backend=inline"), steps=4)
    local = run(assets.overrides(tmp_path / "local", *common, "runtime.backend=local"), steps=4)
    for step, (a, b) in enumerate(zip(inline, local), start=1):
        assert same_metrics(a, b) == [], f"step {step}"


@pytest.mark.parametrize(("first", "then"), [("inline", "local"), ("local", "inline")])
def test_a_checkpoint_resumes_on_the_other_backend(first: str, then: str, assets: Assets, tmp_path: Path) -> None:
    common = ["trainer.steps=3", "trainer.save_every=2", "trainer.export_hf=false"]
    straight = run(assets.overrides(tmp_path / "straight", *common, f"runtime.backend={first}"))
    split = assets.overrides(tmp_path / "split", *common, f"runtime.backend={first}")
    trainer = Trainer(load_train_config(None, split))
    try:
        trainer.run(stop_after=2)
    finally:
        trainer.close()
    resumed = run(assets.overrides(tmp_path / "split", *common, f"runtime.backend={then}"), resume=True)
    assert [h["step"] for h in resumed] == [3.0]
    assert same_metrics(resumed[0], straight[-1]) == []
    for name, tensor in actor_weights(tmp_path / "straight").items():
        np.testing.assert_array_equal(actor_weights(tmp_path / "split")[name], tensor)


@pytest.mark.parametrize("backend", ["inline", "local"])
def test_async_generation_trains_on_data_one_version_old(backend: str, assets: Assets, tmp_path: Path) -> None:
    overrides = assets.overrides(tmp_path / "run", "rollout.max_staleness=1", f"runtime.backend={backend}",
                                 "trainer.steps=3")
    history = run(overrides, steps=3)
    assert [h["rollout/staleness_mean"] for h in history] == [0.0, 1.0, 1.0]
    assert all(np.isfinite(h["actor/loss"]) for h in history)
    assert all(h["actor/ratio_max"] != 1.0 for h in history[1:])  # against the older sampling policy
    assert all(h["time/generate_hidden"] >= 0.0 for h in history)


# -- faults, through the command line -------------------------------------------------------------


def start_cli(assets: Assets, run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    overrides = assets.overrides(run_dir, "runtime.backend=local", "trainer.steps=10000", "trainer.export_hf=false",
                                 "logging.console_every=1", *extra)
    return subprocess.Popen([sys.executable, "-m", "asyppo", "train", *overrides],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def roles_of(driver: subprocess.Popen[str]) -> dict[str, psutil.Process]:
    """The driver's role processes by role name (argv of ``runtime.worker``) and their children."""
    found = {}
    for child in psutil.Process(driver.pid).children(recursive=True):
        try:
            argv = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        found[argv[4] if len(argv) > 4 and "asyppo.runtime.worker" in argv[2] else f"pid{child.pid}"] = child
    return found


def wait_for_steps(run_dir: Path, driver: subprocess.Popen[str], n: int) -> None:
    deadline = time.monotonic() + 300
    metrics = run_dir / "metrics.jsonl"
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= n):
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.2)


def assert_nothing_left(processes: list[psutil.Process], driver_pid: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes):
        assert time.monotonic() < deadline, [p.pid for p in processes if p.is_running()]
        time.sleep(0.2)
    while any(e.startswith(f"asyppo-{driver_pid}-") for e in os.listdir(segment_directory())):
        assert time.monotonic() < deadline, "segments of the run are left in shared memory"
        time.sleep(0.2)


def test_a_role_killed_mid_run_stops_the_run_naming_it(assets: Assets, tmp_path: Path) -> None:
    driver = start_cli(assets, tmp_path / "run")
    try:
        wait_for_steps(tmp_path / "run", driver, 1)
        roles = roles_of(driver)
        roles["critic0"].kill()
        _, stderr = driver.communicate(timeout=DEADLINE_S)
        assert driver.returncode not in (0, None)
        assert "critic0" in stderr and "killed by signal 9" in stderr
        assert_nothing_left(list(roles.values()), driver.pid)
    finally:
        if driver.poll() is None:
            driver.kill()


def test_roles_and_their_workers_go_when_the_driver_is_killed(assets: Assets, tmp_path: Path) -> None:
    driver = start_cli(assets, tmp_path / "run")
    try:
        wait_for_steps(tmp_path / "run", driver, 1)
        processes = list(roles_of(driver).values())
        assert len(processes) >= 5  # reward, actor, critic0, critic1, rollout (+ the reward's worker)
        driver.kill()
        driver.wait()
        assert_nothing_left(processes, driver.pid)
    finally:
        if driver.poll() is None:
            driver.kill()


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_checkpoints_and_the_run_resumes(
    signum: int, status: int, assets: Assets, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    driver = start_cli(assets, run_dir)
    try:
        wait_for_steps(run_dir, driver, 1)
        processes = list(roles_of(driver).values())
        driver.send_signal(signum)
        _, stderr = driver.communicate(timeout=120)
        assert driver.returncode == status, stderr[-3000:]
        assert "checkpoint" in stderr and "--resume" in stderr
        assert_nothing_left(processes, driver.pid)
    finally:
        if driver.poll() is None:
            driver.kill()
    saved = latest_checkpoint(run_dir / "checkpoints")
    assert saved is not None
    steps_done = json.loads((saved / "meta.json").read_text())["step"]
    resumed = run(assets.overrides(run_dir, f"trainer.steps={steps_done + 1}", "trainer.export_hf=false"), resume=True)
    assert [h["step"] for h in resumed] == [float(steps_done + 1)]
