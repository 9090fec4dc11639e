"""How a trained role turns its losses into updates, and what its checkpoint holds.

Two implementations with one interface, :class:`Training`:

* :class:`PlainTraining`: a torch AdamW on the role's parameters; as one of N data-parallel
  workers it sums the workers' gradients before the step (``roles.data_parallel``);
* ``roles.zero.ZeroTraining``: the same optimizer and schedule under DeepSpeed ZeRO
  (``actor.zero_stage``, ``critic.zero_stage``).

Both write the same checkpoint (``checkpoint.save_state``'s layout: the model's weights, a torch
AdamW state dict, the schedule), so a run resumes under either, with any number of workers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from asyppo.trainer.optim import clip_and_step
from asyppo.trainer.roles.data_parallel import DataParallel


class Training(Protocol):
    """A role's optimisation: ``backward`` each micro-batch's loss, ``step`` once per mini-batch.

    ``collective``: forward and backward passes are collective operations (ZeRO), so every worker
    runs the same passes in lockstep (:meth:`micro_batches`)."""

    collective: bool

    def backward(self, loss: torch.Tensor, *, last: bool) -> None:
        """Accumulate ``loss``'s gradients; ``last``: the mini-batch's last micro-batch here."""
        ...

    def step(self) -> float:
        """Clip and apply the accumulated gradients; returns the pre-clip global gradient norm (a
        non-finite one: the step was skipped, weights and schedule unchanged)."""
        ...

    def lr(self) -> float: ...

    def micro_batches(self, n_local: int) -> int:
        """How many micro-batches this worker must run when it holds ``n_local``: more when the
        workers must run their forward passes in lockstep (ZeRO), padded with empty ones."""
        ...

    def full_weights(self, *, modify: bool = False) -> contextlib.AbstractContextManager[None]:
        """A context in which the model's parameters are whole on every worker (ZeRO-3 gathers
        them; ``modify``: rank 0's changes are kept)."""
        ...

    def checkpoint_parts(self, *, saving: bool) -> dict[str, Any]:
        """``checkpoint.save_state`` / ``load_state``'s ``modules``, ``optimizers``,
        ``schedulers``; called on every worker, inside :meth:`full_weights`."""
        ...

    def loaded(self) -> None:
        """After ``load_state`` (inside :meth:`full_weights`): bring derived state up to date."""
        ...


@dataclass
class PlainTraining:
    """AdamW on ``params`` with ``scheduler``, gradients clipped to ``grad_clip``, summed over
    ``data_parallel``'s workers before each step (``optim.clip_and_step``)."""

    model: torch.nn.Module
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    grad_clip: float | None
    data_parallel: DataParallel
    collective = False

    def backward(self, loss: torch.Tensor, *, last: bool) -> None:
        loss.backward()

    def step(self) -> float:
        self.data_parallel.sum_gradients(self.params)
        return clip_and_step(self.params, self.optimizer, self.scheduler, self.grad_clip)

    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def micro_batches(self, n_local: int) -> int:
        return n_local

    @contextlib.contextmanager
    def full_weights(self, *, modify: bool = False) -> Iterator[None]:
        yield

    def checkpoint_parts(self, *, saving: bool) -> dict[str, Any]:
        return {
            "modules": {"model": self.model},
            "optimizers": {"optimizer": self.optimizer},
            "schedulers": {"scheduler": self.scheduler},
        }

    def loaded(self) -> None:
        pass
