"""A run writes to its own directory: a fresh run never appends to another, a resumed one continues
in the directory it resumes, with that run's config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from asyppo.config import ConfigError, load_train_config
from asyppo.trainer import Trainer
from asyppo.trainer.run_dir import resume_config, run_dir_of, truncate_metrics
from trainer_assets import Assets


def test_a_fresh_run_refuses_a_directory_holding_a_run(assets: Assets, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1}\n')
    cfg = load_train_config(None, assets.overrides(tmp_path / "run"))
    with pytest.raises(FileExistsError, match=r"already holds a run.*--resume .*--overwrite"):
        Trainer(cfg)


def test_overwrite_starts_the_run_over(assets: Assets, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 7}\n')
    trainer = Trainer(load_train_config(None, assets.overrides(tmp_path / "run", "trainer.steps=1")), overwrite=True)
    try:
        trainer.run()
    finally:
        trainer.close()
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert 7 not in steps and steps[-1] == 1


def test_resume_takes_the_runs_config_and_directory(assets: Assets, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(
        (Path(__file__).parents[2] / "configs" / "default.yaml").read_text().replace("steps: 80", "steps: 5")
    )
    cfg = resume_config(run, ["trainer.steps=9", "trainer.output_dir=elsewhere"])
    assert cfg.trainer.steps == 9 and cfg.trainer.output_dir == str(run)
    assert run_dir_of(run / "checkpoints" / "step_000002") == run
    assert run_dir_of(run / "checkpoints") == run


@pytest.mark.parametrize("override", ["trainer.seed=7", "rollout.n=2", "algo.name=grpo", "rollout.prompts_per_step=3"])
def test_resume_refuses_to_change_what_the_checkpoint_depends_on(override: str, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text((Path(__file__).parents[2] / "configs" / "default.yaml").read_text())
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        resume_config(tmp_path, [override])


def test_resume_of_a_directory_without_a_run_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        resume_config(tmp_path, [])


def test_a_resumed_run_drops_log_lines_past_its_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"step": s, "x": 1.0}) + "\n" for s in range(5)))
    assert truncate_metrics(log, 2) == 2
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [0, 1, 2]


def test_cli_resume_continues_in_the_given_directory(assets: Assets, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = assets.overrides(run, "trainer.steps=2", "trainer.export_hf=false")
    cli = [sys.executable, "-m", "asyppo", "train"]
    subprocess.run([*cli, *first], check=True, capture_output=True, cwd=tmp_path)
    done = subprocess.run([*cli, "--resume", str(run), "trainer.steps=3"], capture_output=True, text=True, cwd=tmp_path,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 3 and steps.count(3) == 1
    assert not (tmp_path / "runs").exists()  # nothing written to the default output_dir
    again = subprocess.run([*cli, *first], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert again.returncode == 1 and "already holds a run" in again.stderr


def test_a_corrupt_latest_checkpoint_is_named_and_the_previous_one_used(
    assets: Assets, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = assets.overrides(tmp_path / "run", "trainer.steps=3", "trainer.save_every=1", "trainer.export_hf=false")
    trainer = Trainer(load_train_config(None, overrides))
    try:
        trainer.run(stop_after=2)
    finally:
        trainer.close()
    checkpoints = tmp_path / "run" / "checkpoints"
    weights = checkpoints / "step_000002" / "actor" / "modules" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    (checkpoints / ".old-step_000000-deadbeef").mkdir()  # a rotation interrupted by a signal
    resumed = Trainer(load_train_config(None, overrides), resume=True)
    try:
        assert resumed.step == 1
    finally:
        resumed.close()
    assert "step_000002" in capsys.readouterr().err
    assert not (checkpoints / ".old-step_000000-deadbeef").exists()
