"""``plot_run(RUN_DIR)``: PNG curves of a run's ``metrics.jsonl``, one figure per theme.

Figures (written to ``RUN_DIR/plots/``, only those with data): ``reward`` (reward, accuracy,
response length, rollout stats), ``eval`` (``eval/*``), ``losses`` (``*/loss``), ``critics``
(per-critic explained variance, grad norm, value and return means), ``value_masks`` (critic
std, masks, advantages), ``entropy``, ``clip_kl`` (clip fractions, ratio, KL), ``optim`` (grad
norms, learning rates), ``timing`` (``time/*``, tokens/s), ``memory`` and ``other`` for the rest.

Within a figure each panel is one *family* of series drawn on one axis: ``x_mean / x_p50 / x_p90``,
``x_low / x_high``, ``x_min / x_mean / x_max`` share a panel, every critic's ``critic<m>/loss``
shares one (so critics compare at a glance), and all ``time/*`` phases share one.

Rendering uses matplotlib's Agg canvas directly (no pyplot), so it never touches the global
backend of the calling program and needs no display.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from asyppo.observability.logger import read_metrics

PLOTS_DIR = "plots"

# First matching rule wins; the order matters (e.g. critic losses go to "losses", not "critics").
_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("eval", re.compile(r"^eval/")),
    ("losses", re.compile(r"/loss$")),
    ("reward", re.compile(r"^(reward|response|rollout)/")),
    ("entropy", re.compile(r"entropy")),
    ("clip_kl", re.compile(r"clip_frac|kl|/ratio_")),
    (
        "value_masks",
        re.compile(r"^(value|mask|advantage)/|_masked_frac$|_filtered_frac$|/adv_(mean|std)$"),
    ),
    ("optim", re.compile(r"/(grad_norm|lr|optimizer_steps)$")),
    ("critics", re.compile(r"^critic\d*/")),
    ("timing", re.compile(r"^time/|^perf/tokens_per_s$")),
    ("memory", re.compile(r"^(perf/peak|memory/)")),
]
_ORDER = [
    "reward",
    "eval",
    "losses",
    "value_masks",
    "entropy",
    "clip_kl",
    "critics",
    "optim",
    "timing",
    "memory",
    "other",
]
_HEADLINE = (
    "reward/mean",
    "reward/accuracy",
    "eval/accuracy",
    "actor/loss",
)  # first panel of their figure
_SUFFIX = re.compile(r"_(mean|p50|p90|min|max|low|high)$")


def group_of(key: str) -> str:
    """The figure a metric key is drawn in."""
    for name, pattern in _RULES:
        if pattern.search(key):
            return name
    return "other"


def family_of(key: str) -> str:
    """The panel a metric key is drawn in (series of one family share an axis)."""
    if key.startswith("time/"):
        return "time/* (s)"
    key = re.sub(r"^critic\d+/", "critic*/", key)
    return _SUFFIX.sub("", key)


def _draw(
    path: Path, title: str, panels: dict[str, list[tuple[str, list[int], list[float]]]]
) -> None:
    n = len(panels)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.6 * cols, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontweight="bold")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    ordered = sorted(panels.items(), key=lambda item: (item[0] not in _HEADLINE, item[0]))
    for ax, (family, series) in zip(axes, ordered):
        for key, steps, values in series:
            sparse = sum(not math.isnan(v) for v in values) <= 30  # e.g. eval every k steps
            ax.plot(
                steps,
                values,
                label=key,
                marker="o" if sparse else None,
                markersize=3,
                linewidth=1.4,
            )
        ax.set_title(family, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.savefig(path, dpi=100)


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write ``RUN_DIR/plots/<figure>.png`` from ``RUN_DIR/metrics.jsonl``; return the paths.

    Raises:
        FileNotFoundError: no ``metrics.jsonl`` in ``run_dir``.
        ValueError: a malformed line (file and line number in the message), or no metric at all.
    """
    run_dir = Path(run_dir)
    series = read_metrics(run_dir)
    if not series:
        raise ValueError(f"{run_dir / 'metrics.jsonl'}: holds no metrics to plot")
    figures: dict[str, dict[str, list[tuple[str, list[int], list[float]]]]] = {}
    for key in sorted(series):
        steps, values = series[key]
        figures.setdefault(group_of(key), {}).setdefault(family_of(key), []).append(
            (key, steps, values)
        )
    out = run_dir / PLOTS_DIR
    out.mkdir(exist_ok=True)
    written = []
    for name in _ORDER:
        if name in figures:
            path = out / f"{name}.png"
            _draw(path, f"{run_dir.name}: {name.replace('_', ' ')}", figures[name])
            written.append(path)
    return written
