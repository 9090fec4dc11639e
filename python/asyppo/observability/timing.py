"""Per-phase wall time of a training step, and peak memory."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class PhaseTimer:
    """Accumulate wall time per named phase; ``metrics()`` gives ``{"time/<phase>": seconds}``.

    ``with timer.phase("generate"): ...``. A phase entered several times accumulates; phases may
    nest (each is timed on its own, so nested times are not additive).
    """

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[name] = self._seconds.get(name, 0.0) + time.perf_counter() - start

    def metrics(self) -> dict[str, float]:
        return {f"time/{name}": seconds for name, seconds in self._seconds.items()}

    def reset(self) -> None:
        self._seconds.clear()


def peak_memory_metrics() -> dict[str, float]:
    """Peak memory so far, in MiB: ``perf/peak_rss_mb`` and, on CUDA, ``perf/peak_cuda_mb``.

    Process peak resident set size from ``getrusage`` (kilobytes on Linux, bytes on macOS); where
    ``resource`` does not exist (Windows) psutil's peak working set. CUDA: the caching allocator's
    peak allocated bytes over all devices, only when CUDA has been initialised.
    """
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_mb = peak / 2**20 if sys.platform == "darwin" else peak / 1024
    except ImportError:
        import psutil

        info = psutil.Process().memory_info()
        rss_mb = getattr(info, "peak_wset", info.rss) / 2**20
    metrics = {"perf/peak_rss_mb": float(rss_mb)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak_cuda = sum(
            torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count())
        )
        metrics["perf/peak_cuda_mb"] = peak_cuda / 2**20
    return metrics
