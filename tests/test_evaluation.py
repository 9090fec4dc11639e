"""Specification of pass@k and avg@k, against a brute-force enumeration of k-subsets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from asyppo.evaluation import avg_at_k, pass_at_k, sample_metrics
from hypothesis import given
from hypothesis import strategies as st


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
