"""``metrics.jsonl`` (+ TensorBoard, + optional W&B) writer, and the matching reader.

The run log is the contract between the trainer, the plots and any outside tool: one JSON object
per line, ``{"step": <int>, "<group>/<name>": <float or null>, ...}``. Non-finite values are
written as ``null`` so the file stays strict JSON. Lines are appended and flushed one by one, so a
crash loses at most the line being written and a resumed run simply appends; readers keep the
*last* value logged for a (step, key) pair.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.jsonl"
TENSORBOARD_DIR = "tensorboard"


def _as_float(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"metrics[{key!r}]: expected a number, got {type(value).__name__} {value!r}"
        ) from None


def _import_wandb(project: str) -> ModuleType:
    try:
        return importlib.import_module("wandb")
    except ImportError:
        raise ImportError(
            f"W&B logging is enabled (project {project!r}) but the wandb package is not installed: "
            "`pip install wandb` (or `asyppo[wandb]`), or turn W&B off (logging.wandb_project: null)"
        ) from None


class MetricsLogger:
    """Write scalar metrics to ``RUN_DIR/metrics.jsonl``, TensorBoard and, if enabled, W&B.

    Args:
        run_dir: the run directory (created if needed).
        tensorboard: also write TensorBoard scalars under ``RUN_DIR/tensorboard``.
        wandb: ``None`` / ``False``: off. A project name (``str``), ``True`` (project ``asyppo``),
            or a mapping of ``wandb.init`` keyword arguments: on. wandb is imported only then.

    Raises:
        ImportError: W&B is enabled but the ``wandb`` package is not installed (raised here,
            before any training, rather than silently logging nowhere).
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        tensorboard: bool = True,
        wandb: str | bool | Mapping[str, Any] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / METRICS_FILE
        self._wandb_run: Any = None
        if wandb is not None and wandb is not False:
            if wandb is True:
                init_kwargs: dict[str, Any] = {"project": "asyppo"}
            elif isinstance(wandb, str):
                init_kwargs = {"project": wandb}
            elif isinstance(wandb, Mapping):
                init_kwargs = dict(wandb)
            else:
                raise TypeError(
                    f"wandb: expected None, a bool, a project name or a mapping, got {wandb!r}"
                )
            module = _import_wandb(str(init_kwargs.get("project", "asyppo")))
            init_kwargs.setdefault("dir", str(self.run_dir))
            self._wandb_run = module.init(**init_kwargs)
        self._writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow import: only when wanted

            self._writer = SummaryWriter(log_dir=str(self.run_dir / TENSORBOARD_DIR))
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Append one line for ``step``; values may be Python, numpy or 0-d torch numbers.

        Raises:
            TypeError: ``step`` is not an int, a key is not a string or a value is not a number.
            ValueError: ``step`` is negative or a key is ``"step"``.
        """
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError(f"step: expected an int, got {type(step).__name__} {step!r}")
        if step < 0:
            raise ValueError(f"step: expected >= 0, got {step}")
        values: dict[str, float] = {}
        for key, value in metrics.items():
            if not isinstance(key, str):
                raise TypeError(f"metrics: keys must be strings, got {key!r}")
            if key == "step":
                raise ValueError(
                    "metrics: 'step' is reserved for the step number; pass it as `step`"
                )
            values[key] = _as_float(key, value)
        record = {"step": step, **{k: (v if math.isfinite(v) else None) for k, v in values.items()}}
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(key, value, step)
        if self._wandb_run is not None:
            self._wandb_run.log(values, step=step)

    def log_samples(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record sample responses of ``step`` (rows of JSON-able cells, e.g. prompt, response,
        answer, score): appended to ``RUN_DIR/samples.jsonl`` (one line per row, with its step), as
        a markdown table in TensorBoard's text tab (tag ``eval/samples``) and as a W&B table."""
        if not rows:
            return
        columns = list(rows[0])
        with open(self.run_dir / SAMPLES_FILE, "a", encoding="utf-8") as file:
            file.writelines(json.dumps({"step": step, **row}) + "\n" for row in rows)
        if self._writer is not None:
            def cell(value: Any) -> str:
                return str(value).replace("|", "\\|").replace("\n", "<br>")

            lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
            lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
            self._writer.add_text("eval/samples", "\n".join(lines), step)
        if self._wandb_run is not None:
            import wandb

            table = wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])
            self._wandb_run.log({"eval/samples": table}, step=step)

    def close(self) -> None:
        """Flush and close every sink (idempotent)."""
        if not self._file.closed:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(run_dir: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """Read ``RUN_DIR/metrics.jsonl`` into ``key -> (steps, values)``, sorted by step.

    ``null`` reads as NaN. When a step was logged more than once (a resumed run), the last value
    wins.

    Raises:
        FileNotFoundError: no metrics file. ValueError: a line that is not a JSON object with an
        integer ``step`` (named by file and line number).
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (is {run_dir} a run directory?)")
    latest: dict[str, dict[int, float]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            step = record.get("step") if isinstance(record, dict) else None
            if isinstance(step, bool) or not isinstance(step, int):
                # a malformed file is a bad value, not a caller's type error
                raise ValueError(f"{path}:{number}: expected a JSON object with an integer 'step'")  # noqa: TRY004
            for key, value in record.items():
                if key != "step" and (value is None or isinstance(value, (int, float))):
                    latest.setdefault(key, {})[step] = math.nan if value is None else float(value)
    series = {}
    for key, by_step in latest.items():
        steps = sorted(by_step)
        series[key] = (steps, [by_step[s] for s in steps])
    return series
