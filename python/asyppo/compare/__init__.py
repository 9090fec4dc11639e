"""Compare methods over a grid of tasks and seeds (``python -m asyppo compare``, docs/compare.md).

* `spec` — the grid: a study YAML file (methods, tasks, seeds, steps) and command-line changes;
* `runner` — runs it, ``python -m asyppo train`` per run, resumable, several at a time;
* `aggregate` — accuracy curves over samples seen, means and Student-t 95 % intervals, AUC;
* `report` — the console table, CSV, JSON and the curves PNG;
* `cli` — the subcommand.
"""

from __future__ import annotations

from asyppo.compare.aggregate import (
    Estimate,
    RunRecord,
    aggregate,
    area_under_curve,
    mean_interval,
    read_run,
    t_quantile,
)
from asyppo.compare.runner import run_grid, run_state
from asyppo.compare.spec import Method, RunSpec, Study, Task, load_study

__all__ = [
    "Estimate",
    "Method",
    "RunRecord",
    "RunSpec",
    "Study",
    "Task",
    "aggregate",
    "area_under_curve",
    "load_study",
    "mean_interval",
    "read_run",
    "run_grid",
    "run_state",
    "t_quantile",
]
