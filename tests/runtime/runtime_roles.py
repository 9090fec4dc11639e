"""Small roles for runtime tests, importable by role processes (pytest puts this directory on
``sys.path``, which the ``local`` backend hands to every role process)."""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path
from typing import Any

import numpy as np


class Counter:
    def __init__(self, start: int) -> None:
        self.value = start

    def add(self, k: int) -> int:
        self.value += k
        return self.value

    def fail(self) -> None:
        raise RuntimeError("boom")

    def pid(self) -> int:
        return os.getpid()


class Arrays:
    """Echoes and transforms arrays, to check the transport end to end."""

    def echo(self, value: Any) -> Any:
        return value

    def scaled(self, array: np.ndarray, factor: float) -> np.ndarray:
        return array * factor

    def is_shared_view(self, array: np.ndarray) -> bool:
        """True when ``array`` was received as a view of shared memory (not a pickled copy)."""
        base: Any = array
        while isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        return isinstance(base.obj if isinstance(base, memoryview) else base, mmap.mmap)

    def ones_after(self, seconds: float, n: int) -> np.ndarray:
        """An array of ``n`` ones, ``seconds`` from now (a reply that is still to come)."""
        time.sleep(seconds)
        return np.ones(n)

    def segment_names(self) -> list[str]:
        return sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else []


class Rendezvous:
    """Two of these can only both finish if they run at the same time: ``wait_for`` blocks until
    the other one's ``arrive`` has created the file."""

    def wait_for(self, path: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if Path(path).exists():
                return True
            time.sleep(0.01)
        return False

    def arrive(self, path: str) -> None:
        Path(path).touch()


class FailsToStart:
    def __init__(self) -> None:
        raise ValueError("bad model directory /nowhere")


class Scorer:
    """A stand-in for a model role: scores each response token of a batch, and records calls."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.seen: list[str] = []

    def scores(self, batch: Any, scale: float) -> np.ndarray:
        """float32 ``[T]``: token id x ``scale``, a function of the token alone (so any split gives
        the same packed result)."""
        self.seen.append(f"scores:{len(batch)}")
        return batch.response_ids.astype(np.float32) * scale

    def whoami(self) -> int:
        self.seen.append("whoami")
        return self.rank

    def calls(self) -> list[str]:
        return self.seen

    def fail_on(self, rank: int) -> int:
        if rank == self.rank:
            raise RuntimeError(f"worker {rank} failed")
        return self.rank
