"""``python -m asyppo compare``: run a grid of trainings (resumable, in parallel) and report.

Examples::

    python -m asyppo compare configs/study/sums.yaml --jobs 2          # run what is missing, report
    python -m asyppo compare configs/study/sums.yaml --report-only     # aggregate what is finished
    python -m asyppo compare --method asyppo --method "grpo algo.name=grpo" \\
        --seeds 1 2 3 --steps 20 --output-dir runs/cmp                  # a grid without a file

Writes ``OUTPUT_DIR/results.csv``, ``results.json``, ``results.md`` and ``curves.png`` and prints the table.
"""

from __future__ import annotations

import argparse
import shlex
import signal
from pathlib import Path

from asyppo.compare.aggregate import aggregate, read_run
from asyppo.compare.report import plot_curves, print_table, write_csv, write_json, write_markdown
from asyppo.compare.runner import run_grid, run_state
from asyppo.compare.spec import Method, Study, load_study, with_command_line
from asyppo.config import ConfigError


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the ``compare`` subcommand on ``commands``."""
    p = commands.add_parser("compare", help="run a grid of methods x tasks x seeds and compare them")
    p.add_argument("study", nargs="?", help="study YAML file (configs/study/*.yaml)")
    p.add_argument("--method", action="append", default=[], metavar='"NAME [CONFIG.yaml] [KEY=VALUE ...]"',
                   help="a method (repeatable): its name, optional config file and overrides, one string")
    p.add_argument("--only", action="append", default=[], metavar="METHOD", help="run/report only these methods")
    p.add_argument("--task", action="append", default=[], metavar="TASK", help="run/report only these tasks")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (replace the study's)")
    p.add_argument("--steps", type=int, help="trainer.steps of every run")
    p.add_argument("--eval-every", type=int, help="trainer.eval_every of every run")
    p.add_argument("--output-dir", help="where the runs and the report go")
    p.add_argument("--baseline", metavar="METHOD",
                   help="report each method's paired difference from this one (replaces the file's baseline)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (each gets cores // jobs torch threads)")
    p.add_argument("--threads", type=int, help="torch threads per run (default: cores // jobs)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--report-only", action="store_true", help="aggregate the finished runs, run nothing")
    return p


def _parse_method(text: str) -> Method:
    tokens = shlex.split(text)
    if not tokens:
        raise ConfigError("--method: empty")
    config = [t for t in tokens[1:] if t.endswith((".yaml", ".yml")) and "=" not in t]
    if len(config) > 1:
        raise ConfigError(f"--method {text!r}: more than one config file")
    return Method(tokens[0], config[0] if config else None, tuple(t for t in tokens[1:] if t not in config))


def build_study(args: argparse.Namespace) -> Study:
    if args.study:
        study = load_study(args.study)
        if args.method:
            raise ConfigError("--method: give methods either in the study file or on the command line")
    else:
        if not args.method:
            raise ConfigError("compare: give a study file or at least one --method")
        study = Study(name="compare", output_dir=Path(args.output_dir or "runs/compare"),
                      methods=tuple(_parse_method(m) for m in args.method))
    return with_command_line(
        study, seeds=args.seeds, steps=args.steps, eval_every=args.eval_every, output_dir=args.output_dir,
        overrides=args.set, only_methods=args.only, only_tasks=args.task, baseline=args.baseline,
    )


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM too stops the runs this process started (they checkpoint)


def run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop)
    study = build_study(args)
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    runs = study.runs()
    failed = 0
    if not args.report_only:
        outcomes = run_grid(runs, jobs=args.jobs, threads=args.threads, dry_run=args.dry_run)
        failed = sum(1 for o in outcomes if o.returncode not in (None, 0))
        if args.dry_run:
            return 0
    finished = [r for r in runs if run_state(r) == "finished"]
    if len(finished) < len(runs):
        print(f"{len(runs) - len(finished)} of {len(runs)} runs are not finished: left out of the report")
    if not finished:
        return 1
    cells = aggregate([read_run(r) for r in finished], baseline=study.baseline)
    study.output_dir.mkdir(parents=True, exist_ok=True)
    print_table(cells, title=study.name)
    out = study.output_dir
    for path in (write_csv(cells, out / "results.csv"), write_json(cells, out / "results.json"),
                 write_markdown(cells, out / "results.md"), plot_curves(cells, out / "curves.png", title=study.name)):
        print(path)
    return 1 if failed else 0
