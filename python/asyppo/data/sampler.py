"""`PromptSampler`: seeded, epoch-aware, resumable batches of prompts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from asyppo.data.records import PromptRecord


class PromptSampler:
    """An endless iterator of ``batch_size``-record batches.

    Epoch ``e`` visits the records in the order ``default_rng([seed, e]).permutation(n)`` and
    yields ``n // batch_size`` batches (the remainder is dropped, so no batch repeats a prompt and
    every batch has the same size); then epoch ``e + 1`` starts with a fresh permutation. The
    permutation depends only on (seed, epoch), so ``state_dict()`` is just the position and a
    sampler restored with ``load_state_dict`` yields exactly the batches the original would have.
    """

    def __init__(self, records: Sequence[PromptRecord], *, batch_size: int, seed: int) -> None:
        if not records:
            raise ValueError("PromptSampler: records is empty")
        if not 0 < batch_size <= len(records):
            raise ValueError(
                f"PromptSampler: batch_size must be in [1, {len(records)}] (the number of records), got {batch_size}"
            )
        self.records = list(records)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.position = 0  # batches already taken from the current epoch
        self._order = self._permutation(0)

    @property
    def batches_per_epoch(self) -> int:
        return len(self.records) // self.batch_size

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.records))

    def __iter__(self) -> Iterator[list[PromptRecord]]:
        return self

    def __next__(self) -> list[PromptRecord]:
        if self.position == self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
            self._order = self._permutation(self.epoch)
        start = self.position * self.batch_size
        self.position += 1
        return [self.records[i] for i in self._order[start : start + self.batch_size]]

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable position (plus the settings it is only valid for)."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "batch_size": self.batch_size,
            "n_records": len(self.records),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``; ValueError if it was saved for other records or settings."""
        for key, mine in (
            ("seed", self.seed),
            ("batch_size", self.batch_size),
            ("n_records", len(self.records)),
        ):
            if key not in state:
                raise ValueError(f"PromptSampler.load_state_dict: state has no {key!r}")
            if state[key] != mine:
                raise ValueError(
                    f"PromptSampler.load_state_dict: state was saved with {key}={state[key]}, this sampler has {mine}"
                )
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= self.batches_per_epoch:
            raise ValueError(
                f"PromptSampler.load_state_dict: bad position epoch={epoch} position={position}"
            )
        self.epoch, self.position = epoch, position
        self._order = self._permutation(epoch)
