"""Observability: the run log (JSONL, TensorBoard, optional W&B), console line, progress bar,
phase timer, peak memory, end-of-run summary and plots. See ``docs/observability.md``."""

from __future__ import annotations

from typing import Any

from asyppo.observability.console import (
    StepProgress,
    format_step_line,
    print_samples,
    print_summary,
)
from asyppo.observability.logger import METRICS_FILE, MetricsLogger, read_metrics
from asyppo.observability.timing import PhaseTimer, peak_memory_metrics

__all__ = [
    "METRICS_FILE",
    "MetricsLogger",
    "PhaseTimer",
    "StepProgress",
    "format_step_line",
    "peak_memory_metrics",
    "plot_run",
    "print_samples",
    "print_summary",
    "read_metrics",
]


def __getattr__(name: str) -> Any:
    # matplotlib (~30 MiB RSS) loads only for ``plot``, never in a training process.
    if name == "plot_run":
        from asyppo.observability.plots import plot_run

        return plot_run
    raise AttributeError(f"module 'asyppo.observability' has no attribute {name!r}")
