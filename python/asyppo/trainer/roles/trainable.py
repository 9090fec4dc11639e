"""What the trained roles (actor, critics) share: their checkpoint files, saved by their own process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from asyppo import checkpoint
from asyppo.trainer.guards import check_finite_modules


class TrainableRole:
    """A role holding ``model``, ``optimizer`` and ``scheduler``: saves and restores them itself."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any

    def _state(self) -> dict[str, Any]:
        return {
            "modules": {"model": self.model},
            "optimizers": {"optimizer": self.optimizer},
            "schedulers": {"scheduler": self.scheduler},
        }

    def save(self, directory: str | Path) -> None:
        """Write weights, optimizer, schedule and this process's RNG into ``directory``
        (``checkpoint.save_state``; the driver publishes the step's checkpoint atomically)."""
        check_finite_modules({type(self).__name__: self.model})  # never a NaN in a checkpoint
        checkpoint.save_state(directory, **self._state())

    def load(self, directory: str | Path) -> None:
        """Restore what :meth:`save` wrote (``checkpoint.load_state``)."""
        checkpoint.load_state(directory, **self._state())
