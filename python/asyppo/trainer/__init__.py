"""The AsyPPO trainer: the loop of docs/algorithm.md over runtime roles, with eval, checkpoints and resume.

``Trainer`` and ``RunResult`` are imported on first use so that the light submodules (model
input layout, schedules) do not pull in every role's dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyppo.config.schema import TrainConfig
    from asyppo.trainer.loop import RunResult, Trainer


def train(cfg: TrainConfig, *, resume: Any = None, overwrite: bool = False) -> RunResult:
    """Run a whole training job for ``cfg``; ``resume`` is True (latest checkpoint) or a path;
    ``overwrite`` lets a fresh run replace a run already in ``trainer.output_dir``."""
    from asyppo.trainer.loop import Trainer

    trainer = Trainer(cfg, resume=resume, overwrite=overwrite)
    try:
        return trainer.run()
    finally:
        trainer.close()


def __getattr__(name: str) -> Any:
    if name in ("Trainer", "RunResult"):
        from asyppo.trainer import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'asyppo.trainer' has no attribute {name!r}")


__all__ = ["RunResult", "Trainer", "train"]
