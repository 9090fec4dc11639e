"""Aggregate finished runs: accuracy curves over samples seen, means and 95 % intervals over seeds.

Per run (read from its directory: ``metrics.jsonl``, ``config.yaml``, ``summary.json``,
``compare.json``):

* **curve**: held-out ``eval/accuracy`` at every evaluated step, against *samples seen* =
  ``step * rollout.prompts_per_step * rollout.n`` (responses generated for training so far);
* **final accuracy**: the last evaluation (the trainer always evaluates after the last step);
* **AUC**: the area under the curve by the trapezoid rule divided by the span of samples, i.e.
  the time-averaged accuracy over training (a number in [0, 1], comparable across step counts);
* **wall time**: the ``python -m asyppo train`` command's seconds (``compare.json``), else the
  trainer's (``summary.json``); **peak memory**: the largest ``perf/peak_rss_mb`` logged (the
  driver process; with ``runtime.backend: local`` also the roles' ``memory/*_rss_mb`` maxima).

Over the seeds of one (task, method) cell, each number is summarised by its mean and a 95 %
confidence interval from Student's t on the per-seed values::

    mean = (1/n) sum_i x_i,   s = sqrt( sum_i (x_i - mean)^2 / (n - 1) )
    interval = mean -+ t_{0.975, n-1} * s / sqrt(n)

(no interval for n = 1). Curves are aggregated the same way at every step all seeds evaluated.

With a **baseline** method, each other method of a task is also compared with it seed by seed:
with the same seed every method sees the same prompts and the same first rollout, so the per-seed
differences d_i = x_i - b_i (over the seeds both ran) share the seed's luck, and their mean and
t-interval (the paired t-test's) separate methods that the per-method intervals, wide with the
seed-to-seed spread, cannot. An interval that excludes 0 is a difference significant at the 5 %
level (two-sided, no correction for the number of comparisons).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import yaml

from asyppo.compare.spec import RunSpec
from asyppo.observability.logger import read_metrics

ACCURACY = "eval/accuracy"


# -- Student's t -------------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0

    def floor(v: float) -> float:
        return v if abs(v) > tiny else tiny

    c, d = 1.0, 1.0 / floor(1.0 - qab * x / qap)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        d, c = 1.0 / floor(1.0 + even * d), floor(1.0 + even / c)
        h *= d * c
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d, c = 1.0 / floor(1.0 + odd * d), floor(1.0 + odd / c)
        h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on :func:`t_cdf`, to 1e-12)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile: need 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12:
            break
    return 0.5 * (low + high)


@dataclass(frozen=True)
class Estimate:
    """Mean of ``n`` per-seed values and its 95 % Student-t interval (``low``/``high`` NaN for n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean and the two-sided ``confidence`` interval mean -+ t_{(1+c)/2, n-1} s / sqrt(n)."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Estimate(mean, math.nan, math.nan, n)
    half = t_quantile(0.5 + confidence / 2, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


def area_under_curve(x: Sequence[float], y: Sequence[float]) -> float:
    """Trapezoid area under ``y(x)`` divided by the span of ``x`` (the average height); a single
    point gives its own value, none gives NaN."""
    if len(x) != len(y):
        raise ValueError(f"area_under_curve: {len(x)} x values but {len(y)} y values")
    if not len(x):
        return math.nan
    if len(x) == 1 or x[-1] == x[0]:
        return float(y[-1])
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2) / (xs[-1] - xs[0]))


# -- runs --------------------------------------------------------------------------------------
@dataclass
class RunRecord:
    """What one finished run contributes."""

    task: str
    method: str
    seed: int
    steps: list[int]
    samples: list[int]
    accuracy: list[float]
    wall_s: float
    peak_mem_mb: float

    @property
    def final(self) -> float:
        return self.accuracy[-1] if self.accuracy else math.nan

    @property
    def start(self) -> float:
        return self.accuracy[0] if self.accuracy and self.steps[0] == 0 else math.nan

    @property
    def auc(self) -> float:
        return area_under_curve(self.samples, self.accuracy)


def read_run(run: RunSpec) -> RunRecord:
    """The :class:`RunRecord` of a finished run (FileNotFoundError if a file is missing)."""
    directory = run.run_dir
    series = read_metrics(directory)
    config = yaml.safe_load((directory / "config.yaml").read_text())
    per_step = int(config["rollout"]["prompts_per_step"]) * int(config["rollout"]["n"])
    steps, values = series.get(ACCURACY, ([], []))
    kept = [(s, v) for s, v in zip(steps, values) if not math.isnan(v)]
    wall = math.nan
    for name, key in (("compare.json", "wall_s"), ("summary.json", "seconds")):
        path = directory / name
        if path.is_file():
            record = json.loads(path.read_text())
            if record.get("returncode", 0) == 0 and key in record:
                wall = float(record[key])
                break
    peaks = [max((v for v in series[k][1] if not math.isnan(v)), default=math.nan)
             for k in series if k == "perf/peak_rss_mb" or (k.startswith("memory/") and k.endswith("rss_mb"))]
    return RunRecord(
        task=run.task, method=run.method, seed=run.seed, steps=[s for s, _ in kept],
        samples=[s * per_step for s, _ in kept], accuracy=[v for _, v in kept], wall_s=wall,
        peak_mem_mb=max(peaks, default=math.nan),
    )


@dataclass
class Cell:
    """One (task, method) over its seeds."""

    task: str
    method: str
    runs: list[RunRecord]
    samples: list[int] = field(default_factory=list)  # x of the mean curve
    curve: list[Estimate] = field(default_factory=list)
    baseline: Cell | None = None  # the same task's baseline method, if any (not the baseline itself)

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    def estimate(self, what: str) -> Estimate:
        return mean_interval([getattr(r, what) for r in self.runs])

    def paired(self, what: str) -> Estimate:
        """Mean and 95 % interval of ``what`` minus the baseline's, seed by seed over the seeds both
        ran (module docstring); NaN without a baseline."""
        if self.baseline is None:
            return Estimate(math.nan, math.nan, math.nan, 0)
        theirs = {r.seed: getattr(r, what) for r in self.baseline.runs}
        return mean_interval([getattr(r, what) - theirs[r.seed] for r in self.runs if r.seed in theirs])


def aggregate(records: Sequence[RunRecord], baseline: str | None = None) -> list[Cell]:
    """Group ``records`` by (task, method), in first-seen order, with their mean curves; every
    other method of a task that ran ``baseline`` gets it as its :attr:`Cell.baseline`."""
    cells: dict[tuple[str, str], Cell] = {}
    for record in records:
        cells.setdefault((record.task, record.method), Cell(record.task, record.method, [])).runs.append(record)
    for cell in cells.values():
        common = sorted(set.intersection(*(set(zip(r.steps, r.samples)) for r in cell.runs)))
        cell.samples = [x for _, x in common]
        cell.curve = [mean_interval([r.accuracy[r.steps.index(s)] for r in cell.runs]) for s, _ in common]
        if cell.method != baseline:
            cell.baseline = cells.get((cell.task, str(baseline)))
    return list(cells.values())
