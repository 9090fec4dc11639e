"""Report aggregated cells: a rich table on the console, ``results.csv``, ``results.json`` and one
PNG of accuracy curves (one panel per task, one curve per method with its 95 % band, the layout of
the paper's learning-curve figures). With a baseline, the table, CSV and JSON also give each
method's paired difference from it in final accuracy and AUC (``Cell.paired``)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from asyppo.compare.aggregate import Cell, Estimate

METRICS = ("final", "auc", "start", "wall_s", "peak_mem_mb")
#: Numbers also given as paired differences from the baseline.
PAIRED = ("final", "auc")


def _percent(e: Estimate) -> str:
    if math.isnan(e.mean):
        return "n/a"
    if math.isnan(e.low):
        return f"{100 * e.mean:.1f}"
    return f"{100 * e.mean:.1f} ± {100 * e.half_width:.1f}"


def _plain(e: Estimate, digits: int = 0) -> str:
    return "n/a" if math.isnan(e.mean) else f"{e.mean:.{digits}f}"


def _bounds(e: Estimate) -> str:
    return "" if math.isnan(e.low) else f" [{100 * e.low:.1f}, {100 * e.high:.1f}]"


def _difference(cell: Cell, what: str, *, bounds: bool = False) -> str:
    """The paired difference from the baseline in points, ``+2.1 ± 3.0`` (``*`` when its interval
    excludes 0), ``—`` for the baseline itself."""
    if cell.baseline is None:
        return "—"
    e = cell.paired(what)
    if math.isnan(e.mean):
        return "n/a"
    if math.isnan(e.low):
        return f"{100 * e.mean:+.1f}"
    mark = " *" if e.low > 0 or e.high < 0 else ""
    return f"{100 * e.mean:+.1f} ± {100 * e.half_width:.1f}{_bounds(e) if bounds else ''}{mark}"


def baseline_of(cells: Sequence[Cell]) -> str | None:
    """The baseline method the cells are compared with, if any."""
    return next((c.baseline.method for c in cells if c.baseline is not None), None)


def print_table(cells: Sequence[Cell], console: Console | None = None, title: str = "comparison") -> None:
    """Accuracy in %, mean ± half-width of the 95 % interval over seeds; with a baseline, the
    paired differences from it in points (``*``: the interval excludes 0)."""
    baseline = baseline_of(cells)
    table = Table(title=f"{title} (mean ± 95 % t-interval over seeds; accuracy in %)")
    headers = ["task", "method", "seeds", "start acc", "final acc", "AUC", "wall s", "peak MiB"]
    if baseline:
        headers += [f"Δ final vs {baseline}", f"Δ AUC vs {baseline}"]
    for header in headers:
        table.add_column(header, justify="left" if header in ("task", "method") else "right")
    for cell in cells:
        row = [
            cell.task, cell.method, str(len(cell.runs)), _percent(cell.estimate("start")),
            _percent(cell.estimate("final")), _percent(cell.estimate("auc")),
            _plain(cell.estimate("wall_s")), _plain(cell.estimate("peak_mem_mb")),
        ]
        table.add_row(*row, *([_difference(cell, w) for w in PAIRED] if baseline else []))
    (console or Console()).print(table)


def _json_number(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def _json_estimate(e: Estimate) -> dict[str, float | None]:
    return {"mean": _json_number(e.mean), "low95": _json_number(e.low), "high95": _json_number(e.high)}


def cells_to_json(cells: Sequence[Cell]) -> list[dict[str, object]]:
    out = []
    for cell in cells:
        entry: dict[str, object] = {"task": cell.task, "method": cell.method, "seeds": cell.seeds}
        for name in METRICS:
            entry[name] = {**_json_estimate(cell.estimate(name)),
                           "per_seed": [_json_number(getattr(r, name)) for r in cell.runs]}
        if cell.baseline is not None:
            entry["paired"] = {"baseline": cell.baseline.method,
                               **{name: _json_estimate(cell.paired(name)) for name in PAIRED}}
        entry["curve"] = [
            {"samples": x, "mean": _json_number(e.mean), "low95": _json_number(e.low), "high95": _json_number(e.high)}
            for x, e in zip(cell.samples, cell.curve)
        ]
        out.append(entry)
    return out


def write_json(cells: Sequence[Cell], path: Path) -> Path:
    path.write_text(json.dumps(cells_to_json(cells), indent=1) + "\n")
    return path


def write_csv(cells: Sequence[Cell], path: Path) -> Path:
    """One row per (task, method): per metric its mean and 95 % bounds; with a baseline also the
    paired differences (``final_diff_*``, ``auc_diff_*``; empty on the baseline's rows)."""
    paired = baseline_of(cells) is not None
    columns = [f"{m}_{s}" for m in METRICS for s in ("mean", "low95", "high95")]
    if paired:
        columns += [f"{m}_diff_{s}" for m in PAIRED for s in ("mean", "low95", "high95")]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "method", "n_seeds", "seeds", *columns])
        for cell in cells:
            estimates = [cell.estimate(name) for name in METRICS]
            if paired:
                estimates += [cell.paired(name) for name in PAIRED]
            values = ["" if math.isnan(v) else f"{v:.6g}" for e in estimates for v in (e.mean, e.low, e.high)]
            writer.writerow([cell.task, cell.method, len(cell.runs), " ".join(map(str, cell.seeds)), *values])
    return path


def write_markdown(cells: Sequence[Cell], path: Path) -> Path:
    """The console table as Markdown (accuracy in %, mean ± half-width of the 95 % interval, and
    the interval itself; with a baseline its paired differences), for a results page unedited."""
    baseline = baseline_of(cells)
    header = "| task | method | seeds | start acc | final acc (95 % CI) | AUC (95 % CI) | wall s | peak MiB |"
    rule = "|---|---|---|---|---|---|---|---|"
    if baseline:
        header += f" Δ final vs {baseline} (paired) | Δ AUC vs {baseline} (paired) |"
        rule += "---|---|"
    lines = [header, rule]
    for cell in cells:
        final, auc = cell.estimate("final"), cell.estimate("auc")
        line = (
            f"| {cell.task} | {cell.method} | {' '.join(map(str, cell.seeds))} | {_percent(cell.estimate('start'))} "
            f"| {_percent(final)}{_bounds(final)} | {_percent(auc)}{_bounds(auc)} "
            f"| {_plain(cell.estimate('wall_s'))} | {_plain(cell.estimate('peak_mem_mb'))} |"
        )
        if baseline:
            line += "".join(f" {_difference(cell, what, bounds=True)} |" for what in PAIRED)
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


def plot_curves(cells: Sequence[Cell], path: Path, *, title: str = "") -> Path:
    """Held-out accuracy (%) against samples seen: one panel per task, one line + band per method."""
    tasks = list(dict.fromkeys(c.task for c in cells))
    methods = list(dict.fromkeys(c.method for c in cells))
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    fig = Figure(figsize=(5.2 * len(tasks), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title, fontweight="bold", fontsize=10)
    axes = fig.subplots(1, len(tasks), squeeze=False).ravel()
    for ax, task in zip(axes, tasks):
        for cell in (c for c in cells if c.task == task):
            x = cell.samples
            mean = [100 * e.mean for e in cell.curve]
            ax.plot(x, mean, color=colors[cell.method], linewidth=1.5, marker="o", markersize=2.5,
                    label=f"{cell.method} (n={len(cell.runs)})")
            if len(cell.runs) > 1:
                # the t-interval of a few seeds can pass 0 or 100 %: drawn clipped to what accuracy can be
                ax.fill_between(x, [max(0.0, 100 * e.low) for e in cell.curve],
                                [min(100.0, 100 * e.high) for e in cell.curve],
                                color=colors[cell.method], alpha=0.15, linewidth=0)
        ax.set_ylim(0, 100)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("samples seen (responses)", fontsize=8)
        ax.set_ylabel("held-out accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=80)
    return path
