"""Guards against training on non-finite numbers.

`asyppo.trainer.optim.clip_and_step` already refuses a non-finite update (the weights never take
one). What is left is deciding when to give up: one bad batch is survivable, but a run whose
updates keep coming out non-finite (a diverged critic, a reward or learning rate that blows the
loss up) would otherwise log NaN forever. `NonFiniteGuard` stops it after ``max_consecutive``
such steps in a row, and `check_finite_modules` is the last line before a checkpoint is written.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import torch

logger = logging.getLogger(__name__)

_WATCHED_SUFFIXES = ("/loss", "/grad_norm")


class NonFiniteError(RuntimeError):
    """Training produced non-finite numbers too many steps in a row, or a module to be saved
    holds a non-finite parameter."""


def nonfinite_metrics(metrics: Mapping[str, float]) -> list[str]:
    """The keys that mark a step as non-finite: a ``*/skipped_updates`` above 0, or a non-finite
    ``*/loss`` or ``*/grad_norm`` (other metrics may be NaN legitimately and are ignored)."""
    bad = []
    for key, value in metrics.items():
        if key.endswith("/skipped_updates"):
            if value > 0:
                bad.append(key)
        elif key.endswith(_WATCHED_SUFFIXES) and not math.isfinite(value):
            bad.append(key)
    return bad


class NonFiniteGuard:
    """Watches each training step's metrics; raises `NonFiniteError` after ``max_consecutive``
    non-finite steps (`nonfinite_metrics`) in a row. Each non-finite step is logged as a warning;
    a finite step resets the count. Its count is resumable (`state_dict` / `load_state_dict`)."""

    def __init__(self, max_consecutive: int = 3) -> None:
        if isinstance(max_consecutive, bool) or not isinstance(max_consecutive, int) or max_consecutive < 1:
            raise ValueError(f"NonFiniteGuard: max_consecutive must be an int >= 1, got {max_consecutive!r}")
        self.max_consecutive = max_consecutive
        self.consecutive = 0

    def check(self, step: int, metrics: Mapping[str, float]) -> list[str]:
        """Record step ``step``; returns its offending keys (empty when it was finite)."""
        bad = nonfinite_metrics(metrics)
        if not bad:
            self.consecutive = 0
            return bad
        self.consecutive += 1
        shown = ", ".join(f"{k}={metrics[k]}" for k in bad)
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteError(
                f"step {step}: non-finite training numbers {self.consecutive} steps in a row ({shown}); "
                "stopping before a checkpoint is written. The last checkpoint holds the last finite "
                "weights; lower the learning rate or check the reward and the critics' values"
            )
        logger.warning(
            "step %d: non-finite training numbers (%s); the update was skipped (%d in a row, the run "
            "stops at %d)", step, shown, self.consecutive, self.max_consecutive,
        )
        return bad

    def state_dict(self) -> dict[str, int]:
        return {"consecutive": self.consecutive}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.consecutive = int(state["consecutive"])


def check_finite_modules(modules: Mapping[str, torch.nn.Module]) -> None:
    """Raise `NonFiniteError` naming the first module and parameter (or buffer) holding a NaN or
    an inf. Meant for right before `asyppo.checkpoint.save_checkpoint`: one pass over the weights."""
    for name, module in modules.items():
        for tensor_name, tensor in (*module.named_parameters(), *module.named_buffers()):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise NonFiniteError(
                    f"{name}.{tensor_name} holds non-finite values; refusing to write it to a checkpoint"
                )
