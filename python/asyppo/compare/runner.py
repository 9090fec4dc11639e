"""Run the grid: each run is ``python -m asyppo train ...`` in its own process, ``jobs`` at a time.

Resumable: a run whose directory holds a ``summary.json`` for the configured number of steps is
*finished* and never run again. A *partial* run (its directory holds a run but no such summary, e.g.
the study was interrupted) continues from its latest checkpoint with ``--resume`` when it has one
and its saved ``config.yaml`` is the one the grid asks for now (``runtime`` and ``logging`` aside),
and is restarted with ``--overwrite`` otherwise (no checkpoint, or the study changed, e.g. its
``steps``). Every run writes its console output to
``RUN_DIR/compare.log`` and how it went (command, exit status, wall seconds) to
``RUN_DIR/compare.json`` (a resumed run's wall time adds up its segments).

With ``jobs`` > 1 the CPU cores are split: every run gets ``runtime.cpu_threads = max(1,
cores // jobs)`` (appended last, so it wins over the study's and the method's settings), so that
``jobs`` runs of torch do not oversubscribe the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asyppo.checkpoint import complete_checkpoints
from asyppo.compare.spec import RunSpec
from asyppo.config import load_train_config
from asyppo.trainer.run_dir import holds_run

LOG_FILE = "compare.log"
RECORD_FILE = "compare.json"


def target_steps(run: RunSpec) -> int:
    """``trainer.steps`` of the run's resolved config (a ConfigError names a bad key)."""
    return load_train_config(run.config, list(run.overrides)).trainer.steps


def run_state(run: RunSpec, steps: int | None = None) -> str:
    """``"finished"``, ``"partial"`` or ``"missing"`` (see the module docstring)."""
    directory = run.run_dir
    summary = directory / "summary.json"
    if summary.is_file():
        try:
            done = int(json.loads(summary.read_text()).get("steps", -1))
        except (ValueError, AttributeError):
            done = -1
        if done == (target_steps(run) if steps is None else steps):
            return "finished"
    return "partial" if directory.is_dir() and holds_run(directory) else "missing"


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """Torch threads for each of ``jobs`` concurrent runs on ``cores`` cores (default: this machine's)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(jobs, 1))


def _same_config(run: RunSpec) -> bool:
    """Whether the run directory's saved config is the grid's config for it (``runtime`` and
    ``logging``, which do not change what is computed, aside)."""
    saved = run.run_dir / "config.yaml"
    try:
        before = load_train_config(str(saved)).model_dump()
    except (ValueError, OSError):
        return False
    after = load_train_config(run.config, list(run.overrides)).model_dump()
    for tree in (before, after):
        tree.pop("runtime", None)
        tree.pop("logging", None)
    return before == after


def train_command(run: RunSpec, state: str, threads: int | None) -> list[str]:
    """The ``python -m asyppo train`` command line that starts, resumes or restarts ``run``."""
    extra = [f"runtime.cpu_threads={threads}"] if threads else []
    extra += ["logging.progress_bar=false"]
    command = [sys.executable, "-m", "asyppo", "train"]
    if state == "partial" and _has_checkpoint(run.run_dir) and _same_config(run):
        return [*command, "--resume", str(run.run_dir), *extra]
    if run.config:
        command += ["--config", run.config]
    command += [*run.overrides, *extra]
    if state == "partial":
        command.append("--overwrite")
    return command


def _has_checkpoint(run_dir: Path) -> bool:
    root = run_dir / "checkpoints"
    return root.is_dir() and bool(complete_checkpoints(root))


def _add_segments(path: Path, record: dict[str, object]) -> dict[str, object]:
    """``record`` with the wall time and segment count of the earlier record at ``path`` added."""
    try:
        before = json.loads(path.read_text())
        record["wall_s"] = round(float(before["wall_s"]) + float(record["wall_s"]), 2)  # type: ignore[arg-type]
        record["segments"] = int(before.get("segments", 1)) + 1
    except (OSError, ValueError, KeyError, TypeError):
        record["segments"] = "unknown: an earlier segment left no record"
    return record


def _print(line: str) -> None:
    print(line, flush=True)  # shows progress at once when the output is a log file


@dataclass
class Outcome:
    run: RunSpec
    state: str  # the state before this call: finished (skipped), partial or missing
    returncode: int | None  # None: skipped
    seconds: float


def run_grid(
    runs: Sequence[RunSpec],
    *,
    jobs: int = 1,
    threads: int | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Run every unfinished run of ``runs``, ``jobs`` at a time; return what happened to each.

    ``threads``: torch threads per run (default: :func:`threads_per_job`). ``dry_run`` prints the
    commands without running them. A failed run is reported and the others go on.
    """
    threads = threads or threads_per_job(jobs)
    echo = echo or _print
    outcomes: list[Outcome] = []
    todo: list[tuple[RunSpec, str]] = []
    for run in runs:
        state = run_state(run)
        if state == "finished":
            outcomes.append(Outcome(run, state, None, 0.0))
        else:
            todo.append((run, state))
    skipped = len(outcomes)
    echo(f"{len(runs)} runs: {skipped} finished (skipped), {len(todo)} to run, {jobs} at a time, "
         f"{threads} torch thread(s) each")
    if dry_run:
        for run, state in todo:
            echo(f"[{state}] " + " ".join(train_command(run, state, threads)))
        return outcomes
    running: list[tuple[subprocess.Popen[bytes], RunSpec, str, float, list[str]]] = []
    pending = list(todo)
    try:
        while pending or running:
            while pending and len(running) < jobs:
                run, state = pending.pop(0)
                command = train_command(run, state, threads)
                run.run_dir.mkdir(parents=True, exist_ok=True)
                with open(run.run_dir / LOG_FILE, "ab") as log:
                    log.write(f"$ {' '.join(command)}\n".encode())
                    log.flush()
                    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
                echo(f"start  {run.label} ({'resume' if '--resume' in command else state})")
                running.append((proc, run, state, time.perf_counter(), command))
            time.sleep(0.2)
            for item in list(running):
                proc, run, state, started, command = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                seconds = time.perf_counter() - started
                record = {"command": command, "returncode": proc.returncode, "wall_s": round(seconds, 2),
                          "state_before": state, "segments": 1}
                if "--resume" in command:  # a resumed run's wall time is the sum of its segments
                    record = _add_segments(run.run_dir / RECORD_FILE, record)
                (run.run_dir / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
                word = "done  " if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see {run.run_dir / LOG_FILE})"
                echo(f"{word} {run.label} in {seconds:.0f} s")
                outcomes.append(Outcome(run, state, proc.returncode, seconds))
    finally:
        for proc, *_ in running:  # interrupted: stop our own children; their runs resume next time
            proc.terminate()
        for proc, run, state, started, command in running:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            record = {"command": command, "returncode": proc.returncode, "state_before": state,
                      "wall_s": round(time.perf_counter() - started, 2), "segments": 1, "stopped": True}
            if "--resume" in command:
                record = _add_segments(run.run_dir / RECORD_FILE, record)
            (run.run_dir / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return outcomes
