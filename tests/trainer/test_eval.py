"""Held-out evaluation inside a run: sample responses to read, the start-of-run eval as an option,
and a warning when answers are cut at the token budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asyppo.config import load_train_config
from asyppo.trainer import Trainer
from trainer_assets import Assets


def run(overrides: list[str]) -> Path:
    cfg = load_train_config(None, overrides)
    trainer = Trainer(cfg)
    try:
        trainer.run()
    finally:
        trainer.close()
    return Path(cfg.trainer.output_dir)


def test_each_eval_keeps_sample_responses_in_the_run_and_on_the_console(
    assets: Assets, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = run(assets.overrides(tmp_path / "run", "trainer.steps=1", "logging.eval_samples=2",
                                   "logging.console_every=1"))
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 0, 1, 1]  # before training and after the last step
    assert all(set(row) == {"step", "prompt", "response", "answer", "score", "correct"} for row in rows)
    assert all(row["prompt"] and isinstance(row["score"], float) for row in rows)
    out = capsys.readouterr().out
    assert "eval samples at step 0" in out and "eval samples at step 1" in out


def test_the_start_of_run_eval_can_be_switched_off(assets: Assets, tmp_path: Path) -> None:
    run_dir = run(assets.overrides(tmp_path / "run", "trainer.steps=1", "trainer.eval_at_start=false",
                                   "logging.eval_samples=0"))
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1]
    assert not (run_dir / "samples.jsonl").exists()


def test_answers_cut_at_the_budget_are_reported_and_warned_about(
    assets: Assets, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Random tiny models almost never emit EOS: with 6 new tokens nearly every answer is cut.
    run_dir = run(assets.overrides(tmp_path / "run", "trainer.steps=1", "trainer.eval_at_start=false"))
    (record,) = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert record["eval/truncated"] > 0.5
    err = capsys.readouterr().err
    assert err.count("before EOS") == 1 and "rollout.max_new_tokens" in err
