"""compare's grid: study files (errors name the file and key), run states, the commands that
start / resume / restart a run, and a resumed grid that skips its finished run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from asyppo.compare.aggregate import aggregate, read_run
from asyppo.compare.runner import run_grid, run_state, threads_per_job, train_command
from asyppo.compare.spec import Method, Study, Task, load_study, with_command_line
from asyppo.config import ConfigError, dump_config, load_train_config
from compare_assets import TinyAssets


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_study_file_expands_to_task_method_seed_runs(tmp_path: Path) -> None:
    study = load_study(write(tmp_path / "s.yaml", f"""
output_dir: {tmp_path / 'out'}
seeds: [3, 4]
steps: 5
eval_every: 2
overrides: [logging.tensorboard=false]
tasks:
  sums: [data.train=builtin:toy-train]
methods:
  asyppo: []
  grpo: {{overrides: [algo.name=grpo]}}
"""))
    assert study.name == "s"
    runs = study.runs()
    assert [r.label for r in runs] == ["sums/asyppo/seed3", "sums/grpo/seed3", "sums/asyppo/seed4", "sums/grpo/seed4"]
    grpo3 = runs[1]
    assert grpo3.run_dir == tmp_path / "out" / "sums" / "grpo" / "seed3"
    assert grpo3.overrides == ("logging.tensorboard=false", "data.train=builtin:toy-train", "algo.name=grpo",
                               "trainer.eval_every=2", "trainer.steps=5", "trainer.seed=3",
                               f"trainer.output_dir={grpo3.run_dir}")
    changed = with_command_line(study, seeds=[9], steps=7, only_methods=["grpo"], overrides=["a.b=1"])
    assert [r.label for r in changed.runs()] == ["sums/grpo/seed9"]
    assert "trainer.steps=7" in changed.runs()[0].overrides and changed.overrides[-1] == "a.b=1"


def test_the_baseline_is_checked_and_dropped_with_its_method(tmp_path: Path) -> None:
    study = load_study(write(tmp_path / "s.yaml", "methods: {a: [], g: [algo.name=grpo]}\nbaseline: a\n"))
    assert study.baseline == "a"
    assert with_command_line(study, only_methods=["g"]).baseline is None
    assert with_command_line(study, only_methods=["a", "g"]).baseline == "a"
    assert with_command_line(study, baseline="g").baseline == "g"
    with pytest.raises(ConfigError, match="--baseline: baseline: 'x' is not one of the methods"):
        with_command_line(study, baseline="x")


@pytest.mark.parametrize(("text", "names"), [
    ("methods: {a: []}\nsedes: [1]\n", "sedes: unknown key"),
    ("methods: {a: []}\nseeds: [1, 1]\n", "seeds: a seed is listed twice"),
    ("methods: {a: []}\nseeds: [x]\n", "seeds: expected an integer"),
    ("methods: {a: {config: nowhere.yaml}}\n", "methods.a.config: config file nowhere.yaml does not exist"),
    ("methods: {a: {overides: []}}\n", "methods.a.overides: unknown key"),
    ("methods: {a: [algo.name]}\n", "methods.a: override 'algo.name' is not KEY=VALUE"),
    ("methods: {'a/b': []}\n", "methods.a/b: 'a/b' is not a valid name"),
    ("seeds: [1]\n", "methods: missing"),
    ("methods: {a: []}\nsteps: 0\n", "steps: expected an integer >= 1"),
    ("methods: {a: []}\ntasks: {t: {overrides: [x=1], more: 1}}\n", "tasks.t.more: unknown key"),
    ("methods: {a: []}\nbaseline: b\n", "baseline: 'b' is not one of the methods (a)"),
])
def test_study_errors_name_the_file_and_the_key(tmp_path: Path, text: str, names: str) -> None:
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    assert str(info.value).startswith(f"{path}: ") and names in str(info.value)


def test_a_method_config_is_found_next_to_the_study_file(tmp_path: Path) -> None:
    write(tmp_path / "m.yaml", "algo: {name: grpo}\n")
    study = load_study(write(tmp_path / "s.yaml", "methods: {g: {config: m.yaml}}\n"))
    assert study.methods[0].config == str(tmp_path / "m.yaml")
    with pytest.raises(ConfigError, match="methods: 'x' is not in the study"):
        with_command_line(study, only_methods=["x"])


def test_threads_are_split_between_jobs() -> None:
    assert threads_per_job(1, cores=8) == 8
    assert threads_per_job(3, cores=8) == 2
    assert threads_per_job(4, cores=2) == 1


def tiny_study(tiny: TinyAssets, out: Path, seeds: tuple[int, ...] = (1, 2), steps: int = 1) -> Study:
    return Study(name="tiny", output_dir=out, methods=(Method("grpo", None, ("algo.name=grpo",)),),
                 tasks=(Task("sums", ()),), seeds=seeds, steps=steps, eval_every=1,
                 overrides=tuple(tiny.overrides()))


def test_partial_runs_are_restarted_or_resumed(tiny: TinyAssets, tmp_path: Path) -> None:
    run = tiny_study(tiny, tmp_path / "out").runs()[0]
    assert run_state(run) == "missing"
    command = train_command(run, "missing", threads=1)
    assert command[:4] == [sys.executable, "-m", "asyppo", "train"] and "--overwrite" not in command
    assert command[-2:] == ["runtime.cpu_threads=1", "logging.progress_bar=false"]
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "config.yaml").write_text("x: 1\n")  # started, no checkpoint yet
    assert run_state(run) == "partial"
    assert train_command(run, "partial", threads=2)[-1] == "--overwrite"
    step = run.run_dir / "checkpoints" / "step_000001"
    step.mkdir(parents=True)
    (step / "meta.json").write_text("{}")
    assert train_command(run, "partial", threads=2)[-1] == "--overwrite"  # not this grid's config
    saved = load_train_config(None, [*run.overrides, "runtime.cpu_threads=4"])  # runtime: no matter
    (run.run_dir / "config.yaml").write_text(dump_config(saved))
    assert train_command(run, "partial", threads=2)[4:] == [  # a complete checkpoint: resume it
        "--resume", str(run.run_dir), "runtime.cpu_threads=2", "logging.progress_bar=false"]
    longer = tiny_study(tiny, tmp_path / "out", steps=3).runs()[0]  # the study changed: restart
    assert longer.run_dir == run.run_dir and train_command(longer, "partial", threads=2)[-1] == "--overwrite"
    (run.run_dir / "summary.json").write_text(json.dumps({"steps": 7}))  # another step count
    assert run_state(run) == "partial"


def test_a_resumed_grid_skips_its_finished_run(tiny: TinyAssets, tmp_path: Path) -> None:
    study = tiny_study(tiny, tmp_path / "out")
    first, second = study.runs()
    lines: list[str] = []
    outcomes = run_grid([first], echo=lines.append)  # a real one-step run in a subprocess
    assert [o.returncode for o in outcomes] == [0], (first.run_dir / "compare.log").read_text()[-3000:]
    assert run_state(first) == "finished"
    log_size = (first.run_dir / "compare.log").stat().st_size
    metrics = (first.run_dir / "metrics.jsonl").read_text()
    lines.clear()
    outcomes = run_grid(study.runs(), dry_run=True, echo=lines.append)
    assert [(o.run.label, o.returncode) for o in outcomes] == [("sums/grpo/seed1", None)]
    assert lines[0].startswith("2 runs: 1 finished (skipped), 1 to run")
    assert len(lines) == 2 and "seed2" in lines[1] and "seed1" not in lines[1]
    outcomes = run_grid([first], echo=lines.append)
    assert [o.returncode for o in outcomes] == [None]
    assert (first.run_dir / "compare.log").stat().st_size == log_size  # not run again
    assert (first.run_dir / "metrics.jsonl").read_text() == metrics
    record = read_run(first)
    assert record.steps == [0, 1] and record.samples == [0, 8] and record.wall_s > 0
    assert record.peak_mem_mb > 0
    assert [c.method for c in aggregate([record])] == ["grpo"]
    assert second.run_dir.exists() is False


def test_a_resumed_run_adds_up_the_wall_time_of_its_segments(tmp_path: Path) -> None:
    from asyppo.compare.runner import _add_segments

    path = write(tmp_path / "compare.json", json.dumps({"wall_s": 10.5, "segments": 1, "stopped": True}))
    assert _add_segments(path, {"wall_s": 4.0, "segments": 1}) == {"wall_s": 14.5, "segments": 2}
    assert _add_segments(tmp_path / "none.json", {"wall_s": 4.0})["segments"].startswith("unknown")


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "configs" / "study").glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_study_files_load_and_every_run_config_resolves(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parents[2])  # method configs are given relative to the repository
    study = load_study(path)
    for run in study.runs():
        load_train_config(run.config, list(run.overrides))
