"""compare's statistics: Student-t quantiles, the 95 % interval against a hand computation, AUC,
the aggregation of runs into (task, method) cells, and paired differences from a baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from asyppo.compare.aggregate import (
    aggregate,
    area_under_curve,
    mean_interval,
    read_run,
    t_quantile,
)
from asyppo.compare.report import plot_curves, write_csv, write_json, write_markdown
from asyppo.compare.spec import RunSpec

# scipy.stats.t.ppf(0.975, df) for these df
T975 = {1: 12.706204736174705, 2: 4.302652729911275, 3: 3.182446305284263, 4: 2.7764451051977987,
        9: 2.2621571627409915, 30: 2.0422724563012373}


@pytest.mark.parametrize("df", sorted(T975))
def test_t_quantile_matches_reference_values(df: int) -> None:
    assert t_quantile(0.975, df) == pytest.approx(T975[df], rel=1e-9)
    assert t_quantile(0.025, df) == pytest.approx(-T975[df], rel=1e-9)
    assert t_quantile(0.5, df) == pytest.approx(0.0, abs=1e-9)


def test_interval_is_mean_plus_minus_t_times_standard_error() -> None:
    # By hand: mean 0.6, s = sqrt(((-.1)^2 + 0 + .1^2) / 2) = 0.1, se = 0.1 / sqrt(3),
    # half-width = t_{0.975, 2} * se = 4.302652729911275 * 0.0577350269 = 0.2484137...
    e = mean_interval([0.5, 0.6, 0.7])
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert e.n == 3
    assert e.mean == pytest.approx(0.6)
    assert (e.low, e.high) == (pytest.approx(0.6 - half), pytest.approx(0.6 + half))
    assert half == pytest.approx(0.24841377, rel=1e-7)


def test_interval_of_one_seed_is_undefined_and_nans_are_ignored() -> None:
    one = mean_interval([0.4])
    assert one.mean == 0.4 and math.isnan(one.low) and math.isnan(one.high)
    assert mean_interval([0.5, math.nan, 0.7]).n == 2
    assert math.isnan(mean_interval([]).mean)


def test_identical_seeds_give_a_zero_width_interval() -> None:
    e = mean_interval([0.3, 0.3, 0.3, 0.3])
    assert e.low == pytest.approx(0.3) and e.high == pytest.approx(0.3)


def test_auc_is_the_trapezoid_area_over_the_span() -> None:
    # (0,0) -> (10,1): area 5; (10,1) -> (20,1): area 10; span 20 -> 0.75
    assert area_under_curve([0, 10, 20], [0.0, 1.0, 1.0]) == pytest.approx(0.75)
    assert area_under_curve([0, 5, 20], [0.2, 0.2, 0.2]) == pytest.approx(0.2)
    assert area_under_curve([7], [0.4]) == 0.4
    assert math.isnan(area_under_curve([], []))
    with pytest.raises(ValueError, match="x values"):
        area_under_curve([0, 1], [0.5])


def fake_run(root: Path, task: str, method: str, seed: int, accuracies: list[float], *,
             every: int = 2, wall: float = 10.0, rss: float = 500.0) -> RunSpec:
    """A finished run directory as the trainer leaves it (config, metrics, summary)."""
    run_dir = root / task / method / f"seed{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("rollout:\n  prompts_per_step: 4\n  n: 2\n")
    lines = []
    for i, acc in enumerate(accuracies):
        record = {"step": i * every, "eval/accuracy": acc}
        if i:
            record["perf/peak_rss_mb"] = rss + i
        lines.append(json.dumps(record))
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    steps = (len(accuracies) - 1) * every
    (run_dir / "summary.json").write_text(json.dumps({"steps": steps, "seconds": wall}))
    return RunSpec(task=task, method=method, seed=seed, run_dir=run_dir, config=None,
                   overrides=(f"trainer.steps={steps}",))


def test_read_run_gives_samples_final_auc_wall_and_peak_memory(tmp_path: Path) -> None:
    record = read_run(fake_run(tmp_path, "sums", "a", 1, [0.2, 0.4, 0.6], wall=12.5, rss=300))
    assert record.steps == [0, 2, 4]
    assert record.samples == [0, 16, 32]  # step * prompts_per_step (4) * n (2)
    assert record.start == 0.2 and record.final == 0.6
    assert record.auc == pytest.approx((0.3 * 16 + 0.5 * 16) / 32)
    assert record.wall_s == 12.5 and record.peak_mem_mb == 302


def test_aggregate_groups_by_task_and_method_with_mean_curves(tmp_path: Path) -> None:
    runs = [
        fake_run(tmp_path, "sums", "a", 1, [0.2, 0.4, 0.6]),
        fake_run(tmp_path, "sums", "a", 2, [0.2, 0.6, 0.8]),
        fake_run(tmp_path, "sums", "b", 1, [0.2, 0.3, 0.3]),
    ]
    cells = aggregate([read_run(r) for r in runs])
    assert [(c.task, c.method, c.seeds) for c in cells] == [("sums", "a", [1, 2]), ("sums", "b", [1])]
    a = cells[0]
    assert a.samples == [0, 16, 32]
    assert [e.mean for e in a.curve] == pytest.approx([0.2, 0.5, 0.7])
    final = a.estimate("final")
    half = T975[1] * math.sqrt(((0.6 - 0.7) ** 2 + (0.8 - 0.7) ** 2) / 1) / math.sqrt(2)
    assert final.mean == pytest.approx(0.7) and final.high == pytest.approx(0.7 + half)
    write_csv(cells, tmp_path / "r.csv")
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert rows[0].startswith("task,method,n_seeds,seeds,final_mean") and len(rows) == 3
    data = json.loads(write_json(cells, tmp_path / "r.json").read_text())
    assert data[0]["final"]["per_seed"] == [0.6, 0.8] and data[1]["final"]["low95"] is None
    table = write_markdown(cells, tmp_path / "r.md").read_text().splitlines()
    assert table[2].startswith("| sums | a | 1 2 | 20.0 ± 0.0 | 70.0 ± ") and len(table) == 4
    assert "| sums | b | 1 | 20.0 | 30.0 | " in table[3]
    png = plot_curves(cells, tmp_path / "c.png", title="t")
    assert png.stat().st_size > 1000


def test_paired_differences_from_the_baseline_against_a_hand_computation(tmp_path: Path) -> None:
    # Final accuracies by seed: base 0.2 / 0.5 / 0.8, b 0.3 / 0.7 / 0.9 (seed 4 has no baseline
    # run and is left out of the pairs). Differences 0.1, 0.2, 0.1: mean 0.4/3, s = sqrt(((0.1 -
    # 0.4/3)^2 * 2 + (0.2 - 0.4/3)^2) / 2) = 0.0577350..., half-width t_{0.975,2} s / sqrt(3) =
    # 0.1434217...: [-0.0100884, 0.2767550], so it includes 0. b's own interval over its seeds
    # is far wider (the seeds' spread), the paired one is not.
    runs = [fake_run(tmp_path, "sums", "base", s, [0.1, acc]) for s, acc in ((1, 0.2), (2, 0.5), (3, 0.8))]
    runs += [fake_run(tmp_path, "sums", "b", s, [0.1, acc]) for s, acc in ((1, 0.3), (2, 0.7), (3, 0.9), (4, 0.0))]
    runs.append(fake_run(tmp_path, "chain", "b", 1, [0.1, 0.4]))  # no baseline on this task
    cells = aggregate([read_run(r) for r in runs], baseline="base")
    base, b, chain_b = cells
    assert base.baseline is None and b.baseline is base and chain_b.baseline is None
    diff = b.paired("final")
    s = math.sqrt(((0.1 - 0.4 / 3) ** 2 * 2 + (0.2 - 0.4 / 3) ** 2) / 2)
    half = T975[2] * s / math.sqrt(3)
    assert diff.n == 3 and diff.mean == pytest.approx(0.4 / 3)
    assert (diff.low, diff.high) == (pytest.approx(0.4 / 3 - half), pytest.approx(0.4 / 3 + half))
    assert half == pytest.approx(0.14342176, rel=1e-6)
    assert math.isnan(chain_b.paired("final").mean)
    table = write_markdown(cells, tmp_path / "r.md").read_text().splitlines()
    assert table[0].endswith("| Δ final vs base (paired) | Δ AUC vs base (paired) |")
    assert table[2].endswith("| — | — |")
    assert "| +13.3 ± 14.3 [-1.0, 27.7] |" in table[3] and "*" not in table[3]
    data = json.loads(write_json(cells, tmp_path / "r.json").read_text())
    assert data[1]["paired"]["baseline"] == "base" and "paired" not in data[0]
    assert data[1]["paired"]["final"]["mean"] == pytest.approx(0.4 / 3, abs=1e-6)
    assert write_csv(cells, tmp_path / "r.csv").read_text().splitlines()[0].endswith("auc_diff_mean,auc_diff_low95,auc_diff_high95")


def test_a_difference_whose_interval_excludes_zero_is_marked(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path, "sums", "base", s, [0.1, acc]) for s, acc in ((1, 0.2), (2, 0.5), (3, 0.8))]
    runs += [fake_run(tmp_path, "sums", "b", s, [0.1, acc]) for s, acc in ((1, 0.3), (2, 0.61), (3, 0.9))]
    cells = aggregate([read_run(r) for r in runs], baseline="base")
    assert cells[1].paired("final").low > 0
    line = write_markdown(cells, tmp_path / "r.md").read_text().splitlines()[3]
    assert line.endswith(" * |") or " * | " in line
