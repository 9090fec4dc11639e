"""MetricsLogger: the metrics.jsonl contract, TensorBoard scalars, W&B on/off, and the reader."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from asyppo.observability import MetricsLogger, read_metrics
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def _lines(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_log_writes_one_json_object_per_line_with_integer_step(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(1, {"reward/mean": 0.5})
        logger.log(2, {"reward/mean": 0.75, "time/generate": 1.25})
    assert _lines(tmp_path) == [
        {"step": 1, "reward/mean": 0.5},
        {"step": 2, "reward/mean": 0.75, "time/generate": 1.25},
    ]


def test_lines_are_flushed_as_they_are_logged(tmp_path: Path) -> None:
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.log(1, {"a/b": 1.0})
    assert _lines(tmp_path) == [{"step": 1, "a/b": 1.0}]
    logger.close()


def test_numpy_and_torch_numbers_are_logged_as_floats(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(0, {"a/np": np.float32(0.5), "a/torch": torch.tensor(2.0), "a/int": 3})
    assert _lines(tmp_path) == [{"step": 0, "a/np": 0.5, "a/torch": 2.0, "a/int": 3.0}]


def test_non_finite_values_are_written_as_null(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(1, {"a/nan": math.nan, "a/inf": math.inf})
    text = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert _lines(tmp_path) == [{"step": 1, "a/nan": None, "a/inf": None}]


def test_reopening_appends_to_the_log(tmp_path: Path) -> None:
    for step in (1, 2):
        with MetricsLogger(tmp_path, tensorboard=False) as logger:
            logger.log(step, {"a/b": float(step)})
    assert [line["step"] for line in _lines(tmp_path)] == [1, 2]


@pytest.mark.parametrize("step", [1.0, "1", True])
def test_non_int_step_is_a_type_error(tmp_path: Path, step: Any) -> None:
    with (
        MetricsLogger(tmp_path, tensorboard=False) as logger,
        pytest.raises(TypeError, match="step: expected an int"),
    ):
        logger.log(step, {"a/b": 1.0})


def test_negative_step_is_a_value_error(tmp_path: Path) -> None:
    with (
        MetricsLogger(tmp_path, tensorboard=False) as logger,
        pytest.raises(ValueError, match="step: expected >= 0"),
    ):
        logger.log(-1, {"a/b": 1.0})


def test_a_step_key_in_the_metrics_is_rejected(tmp_path: Path) -> None:
    with (
        MetricsLogger(tmp_path, tensorboard=False) as logger,
        pytest.raises(ValueError, match="'step' is reserved"),
    ):
        logger.log(1, {"step": 1.0})


def test_a_non_numeric_value_is_rejected_naming_its_key(tmp_path: Path) -> None:
    with (
        MetricsLogger(tmp_path, tensorboard=False) as logger,
        pytest.raises(TypeError, match=r"metrics\['a/b'\]"),
    ):
        logger.log(1, {"a/b": "high"})


def test_tensorboard_scalars_are_written(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, tensorboard=True) as logger:
        logger.log(1, {"reward/mean": 0.25})
        logger.log(2, {"reward/mean": 0.5})
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("reward/mean")
    assert [(e.step, e.value) for e in scalars] == [(1, 0.25), (2, 0.5)]


def test_tensorboard_off_writes_no_event_files(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(1, {"a/b": 1.0})
    assert not (tmp_path / "tensorboard").exists()


def test_wandb_disabled_never_imports_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # any import of wandb would now raise
    with MetricsLogger(tmp_path, tensorboard=False, wandb=None) as logger:
        logger.log(1, {"a/b": 1.0})
    with MetricsLogger(tmp_path, tensorboard=False, wandb=False) as logger:
        logger.log(2, {"a/b": 1.0})


def test_wandb_enabled_but_not_installed_raises_before_logging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(
        ImportError,
        match=r"W&B logging is enabled \(project 'proj'\) but the wandb package is not installed",
    ):
        MetricsLogger(tmp_path, tensorboard=False, wandb="proj")


def test_wandb_enabled_logs_each_step_and_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, Any]] = []
    run = SimpleNamespace(
        log=lambda values, step: calls.append(("log", (values, step))),
        finish=lambda: calls.append(("finish", None)),
    )

    def init(**kwargs: Any) -> SimpleNamespace:
        calls.append(("init", kwargs))
        return run

    monkeypatch.setitem(sys.modules, "wandb", SimpleNamespace(init=init))
    with MetricsLogger(tmp_path, tensorboard=False, wandb="proj") as logger:
        logger.log(3, {"a/b": 1.5})
    assert calls == [
        ("init", {"project": "proj", "dir": str(tmp_path)}),
        ("log", ({"a/b": 1.5}, 3)),
        ("finish", None),
    ]


def test_read_metrics_keeps_the_last_value_of_a_repeated_step(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "a/b": 1.0}\n{"step": 2, "a/b": 2.0}\n{"step": 2, "a/b": 5.0, "c/d": null}\n'
    )
    series = read_metrics(tmp_path)
    assert series["a/b"] == ([1, 2], [1.0, 5.0])
    assert series["c/d"][0] == [2] and math.isnan(series["c/d"][1][0])


def test_read_metrics_names_file_and_line_of_a_malformed_record(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "a/b": 1.0}\n{"a/b": 2.0}\n')
    with pytest.raises(
        ValueError, match=r"metrics\.jsonl:2: expected a JSON object with an integer 'step'"
    ):
        read_metrics(tmp_path)


def test_read_metrics_of_a_directory_without_a_log_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="metrics.jsonl does not exist"):
        read_metrics(tmp_path)
