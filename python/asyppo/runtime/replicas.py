"""A role run as N data-parallel workers, seen by the trainer loop as one :class:`RoleHandle`.

The workers are N roles of one class placed by any process-per-role runtime (``local``, ``ray``),
named ``<role>.rank<r>`` (:func:`worker_name`). :meth:`ReplicaGroup.connect` makes them one
``torch.distributed`` group (rank 0 hosts the rendezvous). Every call goes to every worker (under
ZeRO each takes part in collectives), in one of two ways named when the group is made:

* **split** (the no-grad passes: ``log_probs``, ``values``): the batch (first argument, a
  :class:`~asyppo.engine.TrajectoryBuffer`) is cut into token-balanced shares (:func:`shares`),
  each worker gets its share (maybe empty), and the packed ``[T]`` results are put back in the
  batch's token order;
* otherwise (``update``, ``save``, ``publish_weights``, ...): every worker gets the same call (an
  update hands each worker the whole batch; each takes its share of every mini-batch,
  ``trainer.roles.data_parallel``; what one worker does for all, such as writing a checkpoint, rank
  0 does) and rank 0's result is the call's.

The call's future fails as soon as one worker's call fails (its :class:`RoleError` names the
worker): the others may be blocked in a collective waiting for it, and the trainer stops the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from asyppo.engine import TrajectoryBuffer, balanced_partition
from asyppo.runtime.base import RoleHandle, gather


def shares(batch: TrajectoryBuffer, n_workers: int) -> list[np.ndarray]:
    """Sequence indices of each of ``n_workers`` workers' shares of ``batch``: token-balanced
    (:func:`~asyppo.engine.balanced_partition` on prompt + response tokens, what a forward pass
    costs), deterministic, so every worker computes the same split."""
    return balanced_partition(batch.prompt_lengths + batch.response_lengths, n_workers)


def worker_name(role: str, rank: int) -> str:
    """The runtime name of data-parallel worker ``rank`` of ``role``."""
    return f"{role}.rank{rank}"


class ReplicaGroup:
    """N workers of one role behind one handle (module docstring)."""

    def __init__(
        self,
        name: str,
        workers: Sequence[RoleHandle],
        *,
        split: frozenset[str] = frozenset(),
    ) -> None:
        if not workers:
            raise ValueError(f"{name}: a replica group needs workers")
        self.name = name
        self.workers = list(workers)
        self.split = split

    def connect(self) -> None:
        """Make the workers one ``torch.distributed`` group (blocks until every worker joined)."""
        address = self.workers[0].call("rendezvous_address").result()
        n = len(self.workers)
        gather([w.call("join_data_parallel", address, rank, n) for rank, w in enumerate(self.workers)])

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Future[Any]:
        if method in self.split:
            return self._split_call(method, *args, **kwargs)
        return _joined([w.call(method, *args, **kwargs) for w in self.workers], lambda results: results[0])

    def _split_call(self, method: str, batch: TrajectoryBuffer, /, *args: Any, **kwargs: Any) -> Future[Any]:
        parts = shares(batch, len(self.workers))
        calls = [w.call(method, batch.select(part), *args, **kwargs) for w, part in zip(self.workers, parts)]

        def in_token_order(results: list[np.ndarray]) -> np.ndarray:
            out = np.empty(batch.n_tokens, dtype=results[0].dtype if results else np.float32)
            for part, result in zip(parts, results):
                out[batch.token_index(part)] = result
            return out

        return _joined(calls, in_token_order)


def _joined(futures: list[Future[Any]], combine: Callable[[list[Any]], Any]) -> Future[Any]:
    """A future of ``combine(results)`` once every one of ``futures`` succeeded, or of the first
    exception as soon as one fails."""
    joined: Future[Any] = Future()
    if not futures:
        joined.set_result(combine([]))
        return joined
    remaining = [len(futures)]
    lock = threading.Lock()

    def done(future: Future[Any]) -> None:
        with lock:
            if joined.done():
                return
            if future.exception() is not None:
                joined.set_exception(future.exception())  # type: ignore[arg-type]
                return
            remaining[0] -= 1
            if remaining[0]:
                return
        try:
            joined.set_result(combine([f.result() for f in futures]))
        except Exception as exc:  # noqa: BLE001 - a result that cannot be combined fails the call
            joined.set_exception(exc)

    for future in futures:
        future.add_done_callback(done)
    return joined
