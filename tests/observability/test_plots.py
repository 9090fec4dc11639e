"""plot_run: PNG curves grouped by theme from metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asyppo.observability import plot_run
from asyppo.observability.plots import family_of, group_of

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_run(run_dir: Path, steps: int = 6) -> None:
    with open(run_dir / "metrics.jsonl", "w") as f:
        for step in range(1, steps + 1):
            record = {
                "step": step,
                "reward/mean": step / steps,
                "critic0/loss": 1.0 / step,
                "critic1/loss": 1.1 / step,
                "value/std_mean": 0.1,
                "value/std_p90": 0.2,
                "time/generate": 1.0,
                "time/actor": 0.5,
            }
            if step % 3 == 0:
                record["eval/accuracy"] = step / 10
            f.write(json.dumps(record) + "\n")


def test_plot_run_writes_one_png_per_theme_present(tmp_path: Path) -> None:
    _write_run(tmp_path)
    paths = plot_run(tmp_path)
    assert [p.name for p in paths] == [
        "reward.png",
        "eval.png",
        "losses.png",
        "value_masks.png",
        "timing.png",
    ]
    for path in paths:
        assert path.parent == tmp_path / "plots"
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_plot_run_without_metrics_says_which_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="metrics.jsonl does not exist"):
        plot_run(tmp_path)


def test_plot_run_of_an_empty_log_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="holds no metrics to plot"):
        plot_run(tmp_path)


@pytest.mark.parametrize(
    ("key", "group"),
    [
        ("reward/accuracy", "reward"),
        ("response/length_mean", "reward"),
        ("eval/pass@4", "eval"),
        ("actor/loss", "losses"),
        ("critic1/loss", "losses"),
        ("critic1/explained_var", "critics"),
        ("value/std_p50", "value_masks"),
        ("mask/adv_masked_frac", "value_masks"),
        ("actor/entropy_kept", "entropy"),
        ("actor/clip_frac_high", "clip_kl"),
        ("actor/approx_kl", "clip_kl"),
        ("actor/grad_norm", "optim"),
        ("time/critic", "timing"),
        ("perf/tokens_per_s", "timing"),
        ("perf/peak_rss_mb", "memory"),
        ("something/else", "other"),
    ],
)
def test_metrics_are_grouped_by_theme(key: str, group: str) -> None:
    assert group_of(key) == group


@pytest.mark.parametrize(
    ("key", "family"),
    [
        ("value/std_p90", "value/std"),
        ("actor/clip_frac_low", "actor/clip_frac"),
        ("critic3/loss", "critic*/loss"),
        ("time/generate", "time/* (s)"),
        ("reward/mean", "reward/mean"),
    ],
)
def test_related_series_share_a_panel(key: str, family: str) -> None:
    assert family_of(key) == family
