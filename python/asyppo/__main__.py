"""Command line: ``python -m asyppo {train, eval, plot, config}``.

* ``train [--config X.yaml] [--resume [DIR]] [key=value ...]`` — train; no arguments runs the
  embedded CPU default and prints the held-out accuracy before and after.
* ``eval --model DIR --data FILE [--data FILE2 ...] [--k 4]`` — avg@k and pass@k per dataset.
* ``plot RUN_DIR`` — PNG curves of a run's metrics.
* ``compare [STUDY.yaml] [--jobs N] ...`` — a grid of runs (methods x tasks x seeds), resumable,
  aggregated over seeds (``docs/compare.md``).
* ``plan [--config X.yaml] [--zero-stage S] [--dp N] [--gpu-memory-gb G] [key=value ...]`` — the
  devices each role takes and an estimate of its memory (``docs/planning.md``).
* ``config show [--config X.yaml] [key=value ...]`` — the resolved config as YAML;
  ``config docs`` — the config reference (``docs/config.md``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from asyppo.config import ConfigError, dump_config, load_train_config
from asyppo.rewards.runner import RewardError
from asyppo.runtime.base import RoleError
from asyppo.trainer.guards import NonFiniteError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asyppo", description="Asymmetric PPO for LLM reasoning")
    commands = parser.add_subparsers(dest="command", required=False)

    train = commands.add_parser("train", help="train (no arguments: the embedded CPU default)")
    train.add_argument("--config", help="YAML config file (see configs/)")
    train.add_argument("--resume", nargs="?", const=True, default=None, metavar="DIR",
                       help="continue the run in DIR (default: trainer.output_dir) from its latest "
                            "checkpoint (or the step_NNNNNN DIR), with its own config.yaml")
    train.add_argument("--overwrite", action="store_true",
                       help="start over in a trainer.output_dir that already holds a run")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. algo.name=grpo")

    ev = commands.add_parser("eval", help="avg@k and pass@k of a model on datasets")
    ev.add_argument("--model", required=True, help="HF model directory (e.g. RUN_DIR/hf_export) or gguf:FILE")
    ev.add_argument("--data", required=True, action="append", help="prompt file or builtin:NAME (repeatable)")
    ev.add_argument("--k", type=int, default=4, help="samples per prompt")
    ev.add_argument("--temperature", type=float, default=1.0)
    ev.add_argument("--max-new-tokens", type=int, default=None, help="default: rollout.max_new_tokens")
    ev.add_argument("--config", help="YAML config whose data/reward/rollout sections apply")
    ev.add_argument("overrides", nargs="*", metavar="key=value")

    plot = commands.add_parser("plot", help="PNG curves of a run")
    plot.add_argument("run_dir")

    from asyppo.compare.cli import add_parser as add_compare

    add_compare(commands)

    from asyppo.plan import add_parser as add_plan

    add_plan(commands)

    config = commands.add_parser("config", help="show the resolved config or its reference")
    # show and docs are sub-commands so that overrides may follow --config (one positional list
    # beside the action was filled, empty, before --config was read).
    actions = config.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="the resolved config as YAML ('# from preset X': set by algo.name)")
    show.add_argument("--config", help="YAML config file")
    show.add_argument("overrides", nargs="*", metavar="key=value")
    actions.add_parser("docs", help="the config reference (docs/config.md)")
    return parser


def _train(args: argparse.Namespace) -> int:
    from asyppo.trainer import train
    from asyppo.trainer.report import print_run_report
    from asyppo.trainer.run_dir import resume_config, run_dir_of
    from asyppo.trainer.signals import TrainingInterrupted

    resume, overrides = args.resume, list(args.overrides)
    if isinstance(resume, str) and "=" in resume:
        # `--resume key=value ...`: argparse took the first override as DIR; give it back.
        resume, overrides = True, [resume, *overrides]
    if resume is None:
        cfg = load_train_config(args.config, overrides)
    else:
        if isinstance(resume, str) and args.config:
            raise ConfigError(f"--resume {resume} continues with the run's own config.yaml: drop --config "
                              "and pass any changes as overrides")
        where = resume if isinstance(resume, str) else load_train_config(args.config, overrides).trainer.output_dir
        cfg = resume_config(run_dir_of(where), overrides)
    try:
        result = train(cfg, resume=resume, overwrite=args.overwrite)
    except TrainingInterrupted as stop:
        print(f"{stop}\nresume with: python -m asyppo train --resume {cfg.trainer.output_dir}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:
        print("aborted (second interrupt): the current step is lost; the roles were stopped", file=sys.stderr)
        return 130
    print_run_report(result)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from asyppo.trainer.report import evaluate_model

    cfg = load_train_config(args.config, args.overrides)
    evaluate_model(cfg, args.model, args.data, k=args.k, temperature=args.temperature,
                   max_new_tokens=args.max_new_tokens)
    return 0


def _plot(args: argparse.Namespace) -> int:
    from asyppo.observability import plot_run

    for path in plot_run(args.run_dir):
        print(path)
    return 0


def _config(args: argparse.Namespace) -> int:
    if args.action == "docs":
        from asyppo.config.docs import config_reference

        sys.stdout.write(config_reference())
        return 0
    sys.stdout.write(dump_config(load_train_config(args.config, args.overrides)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    from asyppo.compare.cli import run as _compare
    from asyppo.plan import run as _plan

    handlers = {"train": _train, "eval": _eval, "plot": _plot, "config": _config, "compare": _compare, "plan": _plan}
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (NonFiniteError, RewardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RoleError as exc:
        # A role failed in its own process: name it, show its traceback, every role is stopped.
        print(f"error: {exc.summary}\n--- traceback in role {exc.role!r} ---\n{exc.details.rstrip()}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        # Bad input found while loading (a dataset row, a model directory, a tokenizer mismatch):
        # the message names it; the traceback only helps when debugging asyppo itself.
        if os.environ.get("ASYPPO_DEBUG"):
            raise
        print(f"error: {exc}\n(set ASYPPO_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
