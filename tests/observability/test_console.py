"""The per-step console line, the progress bar helper and the summary table."""

from __future__ import annotations

import io

import pytest
from asyppo.observability import StepProgress, format_step_line, print_summary
from rich.console import Console

FULL = {
    "reward/mean": 0.42,
    "reward/accuracy": 0.4,
    "response/length_mean": 37.25,
    "eval/accuracy": 0.55,
    "value/std_mean": 0.0312,
    "mask/adv_masked_frac": 0.2,
    "mask/ent_filtered_frac": 0.2,
    "actor/entropy": 1.234,
    "actor/entropy_kept": 1.1,
    "actor/clip_frac_low": 0.005,
    "actor/clip_frac_high": 0.015,
    "actor/approx_kl": 0.00123,
    "actor/loss": -0.0123,
    "critic0/loss": 0.1,
    "critic1/loss": 0.2,
    "time/step": 3.214,
    "perf/tokens_per_s": 850.4,
}


def test_step_line_shows_every_standard_metric_compactly() -> None:
    assert format_step_line(12, FULL) == (
        "step 12 | reward 0.42 acc 40.0% len 37.2 eval 55.0% | vstd 0.0312 mask A 20.0% H 20.0% | "
        "ent 1.23 kept 1.1 clip 2.0% kl 0.00123 | loss pi -0.0123 V 0.15 | 3.21s 850 tok/s"
    )


def test_step_line_leaves_out_absent_metrics_and_empty_groups() -> None:
    assert (
        format_step_line(3, {"reward/mean": 1.0, "time/step": 0.5}) == "step 3 | reward 1 | 0.50s"
    )


def test_step_line_leaves_out_nan_metrics() -> None:
    assert format_step_line(1, {"reward/mean": float("nan")}) == "step 1"


def test_progress_without_a_terminal_draws_no_bar_and_prints_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with StepProgress(5) as progress:  # pytest's captured stderr is not a TTY
        assert not progress.active
        progress.advance()
        progress.print("step 1 | reward 0.5")
    captured = capsys.readouterr()
    assert captured.out == "step 1 | reward 0.5\n"
    assert captured.err == ""


def test_enabled_progress_on_a_terminal_draws_a_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    with StepProgress(5, initial=2) as progress:
        assert progress.active
        progress.advance()


def test_disabled_progress_draws_no_bar_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    with StepProgress(5, enabled=False) as progress:
        assert not progress.active


def _render(*args: object, **kwargs: object) -> str:
    buffer = io.StringIO()
    print_summary(*args, console=Console(file=buffer, width=100), **kwargs)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_summary_prints_each_row() -> None:
    text = _render(
        [
            ("eval accuracy at start", "31.0%"),
            ("eval accuracy at end", "72.0%"),
            ("checkpoint", "/runs/x/step_000040"),
        ],
        title="done",
    )
    assert "done" in text
    for cell in ("eval accuracy at start", "31.0%", "72.0%", "/runs/x/step_000040"):
        assert cell in text


def test_summary_accepts_a_mapping_and_header_columns() -> None:
    assert "wall time" in _render({"wall time": "93.1 s"})
    text = _render([("a.jsonl", "0.5", "0.9")], columns=["dataset", "avg@4", "pass@4"])
    assert "pass@4" in text and "a.jsonl" in text


def test_summary_rejects_a_row_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match=r"rows\[1\]: expected 2 cells, got 3"):
        _render([("a", "1"), ("b", "2", "3")])
