"""What the trained roles (actor, critics) share: their checkpoint files, saved by their own process,
and their place in a data-parallel group (``asyppo.trainer.roles.data_parallel``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from asyppo import checkpoint
from asyppo.trainer.guards import check_finite_modules
from asyppo.trainer.roles.data_parallel import DataParallel, rendezvous_address


class TrainableRole:
    """A role holding ``model``, ``optimizer`` and ``scheduler``: saves and restores them itself.

    Run as N data-parallel workers, every worker holds the same state: the group saves through
    rank 0 alone (``asyppo.runtime.replicas``) and every worker loads the same files, so a
    checkpoint resumes with any number of workers.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    device: str
    data_parallel: DataParallel

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

    def rendezvous_address(self) -> str:
        """Where this worker (rank 0 of a data-parallel group) hosts the group's rendezvous."""
        return rendezvous_address()

    def join_data_parallel(self, address: str, rank: int, world_size: int) -> None:
        """Enter the data-parallel group at ``address`` as ``rank`` of ``world_size``
        (:meth:`DataParallel.join`: rank 0's weights become everyone's)."""
        self.data_parallel.join(address, rank, world_size, self.device, self.model)

    def close(self) -> None:
        """Leave the data-parallel group, if any."""
        self.data_parallel.close()
