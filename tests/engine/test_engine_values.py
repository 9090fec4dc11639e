"""engine.aggregate_values against numpy's mean/min/std over the critic axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asyppo import engine


@pytest.mark.parametrize("m", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_aggregate_mean_and_population_std_match_numpy(m: int, dtype: type) -> None:
    values = np.random.default_rng(m).normal(size=(m, 70_001)).astype(dtype)
    value, std = engine.aggregate_values(values)
    assert value.dtype == dtype and std.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(value, values.mean(axis=0), rtol=tol, atol=tol)
    np.testing.assert_allclose(std, values.std(axis=0, ddof=0), rtol=tol, atol=tol)


def test_aggregate_min_takes_the_smallest_critic_and_keeps_std() -> None:
    values = np.random.default_rng(0).normal(size=(3, 100)).astype(np.float32)
    value, std = engine.aggregate_values(values, how="min")
    np.testing.assert_array_equal(value, values.min(axis=0))
    np.testing.assert_allclose(std, values.std(axis=0), rtol=1e-5, atol=1e-6)


def test_two_critics_std_is_half_their_gap() -> None:
    values = np.array([[1.0, 4.0], [3.0, -2.0]])
    _, std = engine.aggregate_values(values)
    np.testing.assert_allclose(std, [1.0, 3.0])


def test_one_critic_has_zero_std() -> None:
    value, std = engine.aggregate_values(np.array([[1.0, 2.0]], np.float32))
    np.testing.assert_array_equal(value, [1.0, 2.0])
    np.testing.assert_array_equal(std, [0.0, 0.0])


def test_aggregate_of_no_tokens_is_empty() -> None:
    value, std = engine.aggregate_values(np.zeros((2, 0), np.float32))
    assert value.shape == (0,) and std.shape == (0,)


def test_aggregate_accepts_non_contiguous_input() -> None:
    values = np.random.default_rng(0).normal(size=(10, 4)).T  # (4, 10) Fortran-ordered view
    value, _ = engine.aggregate_values(values)
    np.testing.assert_allclose(value, values.mean(axis=0))


def test_aggregate_returns_torch_for_torch_input() -> None:
    value, std = engine.aggregate_values(torch.tensor([[1.0, 2.0], [3.0, 2.0]]))
    assert isinstance(value, torch.Tensor) and isinstance(std, torch.Tensor)
    torch.testing.assert_close(value, torch.tensor([2.0, 2.0]))


def test_aggregate_rejects_nan_naming_values() -> None:
    with pytest.raises(ValueError, match="values: expected finite values, found NaN"):
        engine.aggregate_values(np.array([[0.0, np.nan]]))


def test_aggregate_rejects_one_dimensional_values() -> None:
    with pytest.raises(ValueError, match="values: expected a 2-D array"):
        engine.aggregate_values(np.zeros(3))


def test_aggregate_rejects_zero_critics() -> None:
    with pytest.raises(ValueError, match="n_critics >= 1"):
        engine.aggregate_values(np.zeros((0, 3)))


def test_aggregate_rejects_unknown_how() -> None:
    with pytest.raises(ValueError, match=r"how: expected one of \['mean', 'min'\], got 'max'"):
        engine.aggregate_values(np.zeros((2, 3)), how="max")
