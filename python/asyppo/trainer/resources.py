"""Memory of the role processes (``local`` backend): the driver's own is ``peak_memory_metrics``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (``VmHWM`` of ``/proc/PID/status``), MiB; None off Linux."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return None


def role_memory_metrics(runtime: Any) -> dict[str, float]:
    """``perf/roles_peak_rss_mb``: the sum of every role process's peak RSS (an upper bound of
    their peak together), and ``perf/peak_rss_mb_<role>`` for each; empty for in-process roles."""
    peaks = {}
    for name, handle in getattr(runtime, "roles", {}).items():
        pid = getattr(handle, "pid", None)
        peak = _peak_rss_mb(pid) if pid is not None else None
        if peak is not None:
            peaks[name] = peak
    if not peaks:
        return {}
    return {"perf/roles_peak_rss_mb": sum(peaks.values()), **{f"perf/peak_rss_mb_{k}": v for k, v in peaks.items()}}
