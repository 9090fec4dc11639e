"""What a person watches: the per-step line, the progress bar and the end-of-run table."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

if TYPE_CHECKING:
    from typing_extensions import Self

_CRITIC_LOSS = re.compile(r"^critic\d*/loss$")


def _num(x: float) -> str:
    return f"{x:.3g}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _first(metrics: Mapping[str, float], *keys: str) -> float | None:
    for key in keys:
        value = metrics.get(key)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            return float(value)
    return None


def _sum(metrics: Mapping[str, float], *keys: str) -> float | None:
    present = [float(metrics[k]) for k in keys if k in metrics]
    return sum(present) if present else None


def _mean_matching(metrics: Mapping[str, float], pattern: re.Pattern[str]) -> float | None:
    values = [float(v) for k, v in metrics.items() if pattern.match(k)]
    return sum(values) / len(values) if values else None


# (label, how to read it, how to print it), in display groups; absent metrics are skipped.
_Field = tuple[str, Callable[[Mapping[str, float]], float | None], Callable[[float], str]]
_GROUPS: list[list[_Field]] = [
    [
        ("reward", lambda m: _first(m, "reward/mean"), _num),
        ("acc", lambda m: _first(m, "reward/accuracy"), _pct),
        ("len", lambda m: _first(m, "response/length_mean"), lambda x: f"{x:.1f}"),
        ("eval", lambda m: _first(m, "eval/accuracy"), _pct),
    ],
    [
        ("vstd", lambda m: _first(m, "value/std_mean"), _num),
        ("mask A", lambda m: _first(m, "mask/adv_masked_frac"), _pct),
        ("H", lambda m: _first(m, "mask/ent_filtered_frac"), _pct),
    ],
    [
        ("ent", lambda m: _first(m, "actor/entropy"), _num),
        ("kept", lambda m: _first(m, "actor/entropy_kept"), _num),
        ("clip", lambda m: _sum(m, "actor/clip_frac_low", "actor/clip_frac_high"), _pct),
        ("kl", lambda m: _first(m, "actor/approx_kl"), _num),
    ],
    [
        ("loss pi", lambda m: _first(m, "actor/loss"), _num),
        ("V", lambda m: _mean_matching(m, _CRITIC_LOSS), _num),
    ],
    [
        ("", lambda m: _first(m, "time/step"), lambda x: f"{x:.2f}s"),
        ("", lambda m: _first(m, "perf/tokens_per_s"), lambda x: f"{x:.0f} tok/s"),
    ],
]


def format_step_line(step: int, metrics: Mapping[str, float]) -> str:
    """One compact console line for a training step, from the standard metric keys.

    Example: ``step 12 | reward 0.42 acc 40.0% len 37.2 | vstd 0.031 mask A 20.0% H 20.0% |
    ent 1.23 kept 1.1 clip 2.0% kl 0.0012 | loss pi -0.012 V 0.12 | 3.21s 850 tok/s``.
    Reads ``reward/mean``, ``reward/accuracy``, ``response/length_mean``, ``eval/accuracy``,
    ``value/std_mean``, ``mask/adv_masked_frac``, ``mask/ent_filtered_frac``, ``actor/entropy``,
    ``actor/entropy_kept``, ``actor/clip_frac_low + actor/clip_frac_high``, ``actor/approx_kl``,
    ``actor/loss``, the mean of ``critic<m>/loss`` over critics, ``time/step``,
    ``perf/tokens_per_s``; a metric that is absent (or NaN) is left out, and so is an empty group.
    """
    parts = [f"step {step}"]
    for group in _GROUPS:
        cells = []
        for label, read, show in group:
            value = read(metrics)
            if value is not None:
                cells.append(f"{label} {show(value)}".strip())
        if cells:
            parts.append(" ".join(cells))
    return " | ".join(parts)


class StepProgress:
    """A progress bar over training steps that lets lines be printed above it.

    The bar is drawn (tqdm, on stderr) only when ``enabled`` and stderr is a terminal; otherwise
    it is silent, and :meth:`print` writes plain lines to stdout (what a log file wants).
    """

    def __init__(
        self, total: int, *, initial: int = 0, enabled: bool = True, description: str = "train"
    ) -> None:
        self._bar: tqdm[Any] | None = None
        if enabled and sys.stderr.isatty():
            self._bar = tqdm(
                total=total, initial=initial, desc=description, unit="step", leave=False
            )

    @property
    def active(self) -> bool:
        """Whether a bar is being drawn."""
        return self._bar is not None

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def print(self, line: str) -> None:
        """Print ``line`` above the bar (or on stdout when there is no bar)."""
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def print_summary(
    rows: Mapping[str, Any] | Sequence[Sequence[Any]],
    *,
    title: str = "asyppo run summary",
    columns: Sequence[str] | None = None,
    console: Console | None = None,
) -> None:
    """Print a rich table: ``(name, value)`` rows, or rows of ``len(columns)`` cells with a header.

    Typical end-of-run rows: eval accuracy at start and end and the gain, wall time, the run
    directory, the last checkpoint and the HF export. Cells are shown with ``str``.

    Raises:
        ValueError: a row whose length differs from the others (or from ``columns``).
    """
    items = list(rows.items()) if isinstance(rows, Mapping) else [tuple(r) for r in rows]
    width = len(columns) if columns is not None else (len(items[0]) if items else 2)
    for index, row in enumerate(items):
        if len(row) != width:
            raise ValueError(f"rows[{index}]: expected {width} cells, got {len(row)}: {row!r}")
    table = Table(title=title, show_header=columns is not None, title_justify="left")
    for index, name in enumerate(columns if columns is not None else [""] * width):
        table.add_column(str(name), style="bold" if index == 0 else None, overflow="fold")
    for row in items:
        table.add_row(*(str(cell) for cell in row))
    (console or Console()).print(table)


def print_samples(step: int, rows: Sequence[Mapping[str, Any]], *, console: Console | None = None) -> None:
    """A table of sample responses of ``step`` (long prompts show their last 300 characters)."""
    if not rows:
        return
    columns = list(rows[0])

    def cell(name: str, value: Any) -> str:
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        return "…" + text[-300:] if name == "prompt" and len(text) > 300 else text

    print_summary(
        [[cell(c, row[c]) for c in columns] for row in rows],
        title=f"eval samples at step {step}",
        columns=columns,
        console=console,
    )
