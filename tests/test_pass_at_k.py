"""Specification of pass@k and avg@k, against a brute-force enumeration of k-subsets; and the
``eval`` command's arguments (no ``nan%`` for ``--k 0``, no silent default for
``--max-new-tokens 0``)."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
from asyppo.__main__ import main
from asyppo.config import load_train_config
from asyppo.pass_at_k import avg_at_k, pass_at_k, sample_metrics
from asyppo.trainer.report import evaluate_model
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "trainer"))
from trainer_assets import build_assets


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of the k-subsets of n samples (c of them correct) holding a correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@given(
    st.integers(1, 10).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))
    )
)
def test_pass_at_k_equals_brute_force_enumeration(nck: tuple[int, int, int]) -> None:
    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_1_is_the_fraction_correct() -> None:
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)


def test_pass_at_k_is_stable_for_large_n() -> None:
    assert 0.0 < pass_at_k(2000, 1, 5) < 1.0
    assert pass_at_k(2000, 1, 5) == pytest.approx(5 / 2000)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)])
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass_at_k: need"):
        pass_at_k(n, c, k)


def test_avg_at_k_is_mean_correctness() -> None:
    assert avg_at_k(np.array([[1, 0, 0, 1], [1, 1, 1, 1]])) == pytest.approx(0.75)


def test_sample_metrics_average_over_prompts() -> None:
    table = np.array([[True, False, False, False], [False, False, False, False]])
    metrics = sample_metrics(table)
    assert metrics == {"avg@4": pytest.approx(1 / 8), "pass@4": pytest.approx(0.5)}
    assert sample_metrics(table, k=1) == {
        "avg@1": pytest.approx(1 / 8),
        "pass@1": pytest.approx(1 / 8),
    }


def test_sample_metrics_rejects_wrong_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[n_prompts, n_samples\]"):
        sample_metrics(np.array([True, False]))
    with pytest.raises(ValueError, match="need 1 <= k <= n_samples=2"):
        sample_metrics(np.zeros((3, 2), dtype=bool), k=3)


# -- `python -m asyppo eval` ------------------------------------------------------------------


@pytest.mark.parametrize(("flag", "value"), [("--k", "0"), ("--k", "-2"), ("--max-new-tokens", "0")])
def test_eval_refuses_a_count_below_one_before_loading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    # The model directory does not even exist: the arguments are checked first.
    args = ["eval", "--model", str(tmp_path / "none"), "--data", str(tmp_path / "none.jsonl"), flag, value]
    assert main(args) == 1
    assert f"error: eval: {flag} " in (err := capsys.readouterr().err) and f"must be >= 1, got {value}" in err


def test_eval_with_k_1_prints_greedy_only_and_honours_max_new_tokens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assets = build_assets(tmp_path)
    cfg = load_train_config(None, ["reward.verifier=exact"])
    results = evaluate_model(cfg, assets.actor, [str(assets.eval)], k=1, temperature=1.0, max_new_tokens=1)
    (metrics,) = results.values()
    assert set(metrics) == {"eval/accuracy", "eval/response_length", "eval/truncated", "eval/answered"}
    assert metrics["eval/response_length"] <= 1 and metrics["eval/truncated"] == 1.0
    captured = capsys.readouterr()
    assert "prompts | greedy | cut at budget" in captured.out and "avg@" not in captured.out
    assert "nan" not in captured.out
    assert "hit max_new_tokens=1 before EOS" in captured.err  # a cut answer is never silent
