"""Which directory a run writes to, and which config a resumed run continues with.

* A fresh run refuses a directory that already holds a run (its ``config.yaml``, ``metrics.jsonl``
  or ``checkpoints/``): appending to another run's log or overwriting its checkpoints and export
  would lose it. ``overwrite=True`` (``--overwrite``) replaces it on purpose.
* ``--resume DIR`` continues the run *in* DIR (a run directory, its ``checkpoints/`` or one
  ``step_NNNNNN`` checkpoint) with DIR's saved ``config.yaml``; command-line overrides apply on
  top of it, and an override that would change what the checkpoint's state depends on (the seed,
  the batch shape, the algorithm, the models, the training data) is an error naming the key.
"""

from __future__ import annotations

import functools
import json
import operator
import shutil
from pathlib import Path
from typing import Any

from asyppo.config import ConfigError, load_train_config
from asyppo.config.schema import TrainConfig

#: Keys a resumed run must keep: the sampler position, the optimizer states and the shapes of
#: what was saved are only meaningful under them.
FIXED_ON_RESUME = (
    "trainer.seed", "rollout.prompts_per_step", "rollout.n", "trainer.mini_batch_size", "trainer.ppo_epochs",
    "algo.name", "critic.count", "actor.path", "critic.path", "critic.init_from_actor_layers", "data.train",
)

_RUN_MARKERS = ("config.yaml", "metrics.jsonl", "checkpoints")


def holds_run(directory: Path) -> bool:
    return any((directory / marker).exists() for marker in _RUN_MARKERS)


def prepare_fresh_run_dir(directory: Path, *, overwrite: bool) -> None:
    """Refuse (``FileExistsError``) or, with ``overwrite``, empty a directory holding a run."""
    if not holds_run(directory):
        return
    if not overwrite:
        raise FileExistsError(
            f"trainer.output_dir {directory} already holds a run: continue it with --resume {directory}, "
            "start over with --overwrite, or set trainer.output_dir to a new directory"
        )
    for marker in (*_RUN_MARKERS, "summary.json", "hf_export", "plots"):
        target = directory / marker
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for events in directory.glob("events.out.tfevents.*"):
        events.unlink()


def run_dir_of(path: str | Path) -> Path:
    """The run directory of ``path``: itself, or the run above a ``checkpoints`` / ``step_*`` dir."""
    path = Path(path)
    if path.name.startswith("step_") and path.parent.name == "checkpoints":
        return path.parent.parent
    if path.name == "checkpoints":
        return path.parent
    return path


def resume_config(run_dir: Path, overrides: list[str]) -> TrainConfig:
    """The saved config of ``run_dir`` with ``overrides`` applied, writing to ``run_dir``.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.yaml`` (not a run directory).
        ConfigError: an override changes a key of :data:`FIXED_ON_RESUME`, or is invalid.
    """
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise FileNotFoundError(f"--resume {run_dir}: no config.yaml there (not a run directory of asyppo)")
    saved = load_train_config(str(saved_path))
    cfg = load_train_config(str(saved_path), [*overrides, f"trainer.output_dir={run_dir}"])
    before, after = saved.model_dump(), cfg.model_dump()
    changed = [(key, _get(before, key), _get(after, key)) for key in FIXED_ON_RESUME if _get(before, key) != _get(after, key)]
    if changed:
        details = "; ".join(f"{k}: the run has {a!r}, the override gives {b!r}" for k, a, b in changed)
        raise ConfigError(f"--resume {run_dir}: cannot change what the checkpoint depends on ({details})")
    return cfg


def _get(tree: dict[str, Any], dotted: str) -> Any:
    return functools.reduce(operator.getitem, dotted.split("."), tree)


def truncate_metrics(path: Path, step: int) -> int:
    """Drop the lines of the run log ``path`` logged after ``step`` (a resumed run logs them
    again); returns how many were dropped."""
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.strip() or int(json.loads(line).get("step", 0)) <= step]
    if len(kept) != len(lines):
        path.write_text("".join(kept))
    return len(lines) - len(kept)
