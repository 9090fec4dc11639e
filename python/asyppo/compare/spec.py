"""The grid of a study: which methods, on which tasks, with which seeds, for how many steps.

A study file (``configs/study/*.yaml``)::

    name: sums                      # optional; default: the file's stem
    output_dir: runs/study/sums     # one run directory per (task, method, seed) below it
    seeds: [1, 2, 3]
    steps: 40                       # trainer.steps of every run (optional)
    eval_every: 5                   # trainer.eval_every of every run (optional)
    overrides: [logging.tensorboard=false]     # applied to every run, first
    tasks:                          # optional; default: one task named "default" with no overrides
      sums: [data.train=builtin:toy-train, data.eval=builtin:toy-eval]
    methods:                        # name -> {config: FILE or null, overrides: [...]} or [overrides]
      asyppo: []
      grpo: {overrides: [algo.name=grpo]}
    baseline: asyppo                # optional: report each method's paired difference from it

A run's config is ``load_train_config(method.config, overrides)`` with the overrides in this order:
the study's, the task's, the method's, then those the grid sets itself (``trainer.steps``,
``trainer.eval_every``, ``trainer.seed``, ``trainer.output_dir``); later ones win. A relative
``config`` path is read relative to the current directory, then to the study file's directory.
Every error is a :class:`~asyppo.config.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from asyppo.config import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TOP_KEYS = ("name", "output_dir", "seeds", "steps", "eval_every", "overrides", "tasks", "methods", "baseline")


@dataclass(frozen=True)
class Method:
    """One arm of the comparison: a config file (None: the schema defaults) and overrides."""

    name: str
    config: str | None = None
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Task:
    """A setting the methods are compared on (a panel of the plots): overrides."""

    name: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Study:
    """A parsed study file (or a grid given on the command line)."""

    name: str
    output_dir: Path
    methods: tuple[Method, ...]
    tasks: tuple[Task, ...] = (Task("default"),)
    seeds: tuple[int, ...] = (0,)
    steps: int | None = None
    eval_every: int | None = None
    overrides: tuple[str, ...] = ()
    baseline: str | None = None
    source: str = "<command line>"

    def runs(self) -> list[RunSpec]:
        """Every (task, method, seed) of the grid: task-major, then seed, then method, so that a
        study stopped part-way has every method at its first seeds."""
        return [
            RunSpec(task=t.name, method=m.name, seed=s, run_dir=self.output_dir / t.name / m.name / f"seed{s}",
                    config=m.config, overrides=self.run_overrides(t, m, s))
            for t in self.tasks for s in self.seeds for m in self.methods
        ]

    def run_overrides(self, task: Task, method: Method, seed: int) -> tuple[str, ...]:
        """The dotted overrides of one run, in the order they apply (later ones win)."""
        own = [f"trainer.seed={seed}", f"trainer.output_dir={self.output_dir / task.name / method.name / f'seed{seed}'}"]
        if self.steps is not None:
            own.insert(0, f"trainer.steps={self.steps}")
        if self.eval_every is not None:
            own.insert(0, f"trainer.eval_every={self.eval_every}")
        return (*self.overrides, *task.overrides, *method.overrides, *own)


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: where it writes and how its config is made."""

    task: str
    method: str
    seed: int
    run_dir: Path
    config: str | None
    overrides: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return f"{self.task}/{self.method}/seed{self.seed}"


def _fail(source: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {message}")


def _str_list(value: Any, source: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(source, key, f"expected a list of KEY=VALUE strings, got {value!r}")
    for v in value:
        if "=" not in v:
            raise _fail(source, key, f"override {v!r} is not KEY=VALUE")
    return tuple(value)


def _name(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise _fail(source, key, f"{value!r} is not a valid name (letters, digits, '_', '-', '.'; it names a directory)")
    return value


def _positive_int(value: Any, source: str, key: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(source, key, f"expected an integer >= {minimum}, got {value!r}")
    return value


def _config_path(value: Any, source: str, key: str, base: Path | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(source, key, f"expected a config file path or null, got {value!r}")
    path = Path(value)
    if not path.is_absolute() and not path.is_file() and base is not None and (base / path).is_file():
        path = base / path
    if not path.is_file():
        raise _fail(source, key, f"config file {value} does not exist")
    return str(path)


def _methods(value: Any, source: str, base: Path | None) -> tuple[Method, ...]:
    if not isinstance(value, dict) or not value:
        raise _fail(source, "methods", "expected a non-empty mapping name -> {config, overrides}")
    methods = []
    for raw_name, body in value.items():
        name = _name(raw_name, source, f"methods.{raw_name}")
        key = f"methods.{name}"
        if body is None or isinstance(body, (list, str)):
            methods.append(Method(name, None, _str_list(body, source, key)))
            continue
        if not isinstance(body, dict):
            raise _fail(source, key, f"expected a mapping with config/overrides or a list of overrides, got {body!r}")
        unknown = sorted(set(body) - {"config", "overrides"})
        if unknown:
            raise _fail(source, f"{key}.{unknown[0]}", "unknown key (valid: config, overrides)")
        methods.append(Method(
            name,
            _config_path(body.get("config"), source, f"{key}.config", base),
            _str_list(body.get("overrides"), source, f"{key}.overrides"),
        ))
    return tuple(methods)


def _tasks(value: Any, source: str) -> tuple[Task, ...]:
    if value is None:
        return (Task("default"),)
    if not isinstance(value, dict) or not value:
        raise _fail(source, "tasks", "expected a non-empty mapping name -> [overrides]")
    tasks = []
    for raw_name, body in value.items():
        name = _name(raw_name, source, f"tasks.{raw_name}")
        if isinstance(body, dict):
            unknown = sorted(set(body) - {"overrides"})
            if unknown:
                raise _fail(source, f"tasks.{name}.{unknown[0]}", "unknown key (valid: overrides)")
            body = body.get("overrides")
        tasks.append(Task(name, _str_list(body, source, f"tasks.{name}")))
    return tuple(tasks)


def parse_study(tree: Any, *, source: str, base: Path | None = None, default_name: str = "study") -> Study:
    """A :class:`Study` from a parsed YAML mapping (``source`` names it in errors)."""
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: expected a mapping with keys {', '.join(_TOP_KEYS)}")
    unknown = sorted(set(tree) - set(_TOP_KEYS))
    if unknown:
        raise _fail(source, unknown[0], f"unknown key (valid: {', '.join(_TOP_KEYS)})")
    if "methods" not in tree:
        raise _fail(source, "methods", "missing (at least one method is needed)")
    seeds = tree.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds:
        raise _fail(source, "seeds", f"expected a non-empty list of integers, got {seeds!r}")
    seeds = [_positive_int(s, source, "seeds", minimum=0) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise _fail(source, "seeds", f"a seed is listed twice: {seeds}")
    steps, eval_every = tree.get("steps"), tree.get("eval_every")
    methods = _methods(tree["methods"], source, base)
    return Study(
        name=_name(tree.get("name", default_name), source, "name"),
        output_dir=Path(str(tree.get("output_dir") or f"runs/study/{tree.get('name', default_name)}")),
        methods=methods,
        tasks=_tasks(tree.get("tasks"), source),
        seeds=tuple(seeds),
        steps=None if steps is None else _positive_int(steps, source, "steps", minimum=1),
        eval_every=None if eval_every is None else _positive_int(eval_every, source, "eval_every", minimum=0),
        overrides=_str_list(tree.get("overrides"), source, "overrides"),
        baseline=_baseline(tree.get("baseline"), methods, source),
        source=source,
    )


def _baseline(value: Any, methods: tuple[Method, ...], source: str) -> str | None:
    if value is None:
        return None
    names = [m.name for m in methods]
    if value not in names:
        raise _fail(source, "baseline", f"{value!r} is not one of the methods ({', '.join(names)})")
    return str(value)


def load_study(path: str | Path) -> Study:
    """Read a study file. ConfigError (naming the file and key) for anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file {path} does not exist")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return parse_study(tree, source=str(path), base=path.parent, default_name=path.stem)


def with_command_line(
    study: Study,
    *,
    seeds: list[int] | None = None,
    steps: int | None = None,
    eval_every: int | None = None,
    output_dir: str | None = None,
    overrides: list[str] | None = None,
    only_methods: list[str] | None = None,
    only_tasks: list[str] | None = None,
    baseline: str | None = None,
) -> Study:
    """``study`` with the command line's changes (given values replace the file's; overrides are
    appended to the study-wide ones, so they win over the file's study-wide overrides but not over
    a task's or a method's). A baseline left out by ``only_methods`` is dropped."""
    changes: dict[str, Any] = {}
    if seeds:
        changes["seeds"] = tuple(seeds)
    if steps is not None:
        changes["steps"] = steps
    if eval_every is not None:
        changes["eval_every"] = eval_every
    if output_dir:
        changes["output_dir"] = Path(output_dir)
    if overrides:
        changes["overrides"] = (*study.overrides, *_str_list(overrides, "command line", "overrides"))
    for what, names, pool in (("methods", only_methods, study.methods), ("tasks", only_tasks, study.tasks)):
        if names:
            known = {x.name: x for x in pool}
            missing = [n for n in names if n not in known]
            if missing:
                raise ConfigError(f"{study.source}: {what}: {missing[0]!r} is not in the study "
                                  f"(it has {', '.join(known)})")
            changes[what] = tuple(known[n] for n in names)
    methods = changes.get("methods", study.methods)
    if baseline is not None:
        changes["baseline"] = _baseline(baseline, methods, "--baseline")
    elif study.baseline not in {m.name for m in methods}:
        changes["baseline"] = None
    return replace(study, **changes)
