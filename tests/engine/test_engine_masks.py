"""engine.percentile_masks against a full-sort reference ordered by (std, position)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from asyppo import engine
from hypothesis import given
from hypothesis import strategies as st


def reference_masks(std: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    n = len(std)
    order = np.lexsort((np.arange(n), std))  # by std, then by position
    adv, ent = np.ones(n, bool), np.ones(n, bool)
    adv[order[: math.floor(low * n)]] = False
    ent[order[n - math.floor(high * n) :]] = False
    return adv, ent


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 1000, 200_003])
def test_batch_masks_match_full_sort(dtype: type, n: int) -> None:
    std = np.abs(np.random.default_rng(n).normal(size=n)).astype(dtype)
    adv, ent = engine.percentile_masks(std, low=0.2, high=0.3)
    ref_adv, ref_ent = reference_masks(std, 0.2, 0.3)
    np.testing.assert_array_equal(adv, ref_adv)
    np.testing.assert_array_equal(ent, ref_ent)


@given(
    values=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0]), min_size=0, max_size=200),
    low=st.floats(0, 0.5),
    high=st.floats(0, 0.5),
)
def test_masks_have_exact_counts_and_break_ties_by_position(
    values: list[float], low: float, high: float
) -> None:
    std = np.array(values, dtype=np.float32)
    adv, ent = engine.percentile_masks(std, low=low, high=high)
    assert (~adv).sum() == math.floor(low * len(std))
    assert (~ent).sum() == math.floor(high * len(std))
    ref_adv, ref_ent = reference_masks(std, low, high)
    np.testing.assert_array_equal(adv, ref_adv)
    np.testing.assert_array_equal(ent, ref_ent)


def test_all_equal_std_masks_first_and_last_positions() -> None:
    adv, ent = engine.percentile_masks(np.full(10, 0.5, np.float32), low=0.2, high=0.2)
    np.testing.assert_array_equal(np.flatnonzero(~adv), [0, 1])
    np.testing.assert_array_equal(np.flatnonzero(~ent), [8, 9])


def test_negative_zero_ties_with_zero() -> None:
    adv, _ = engine.percentile_masks(np.array([0.0, -0.0, 1.0]), low=0.34, high=0.0)
    np.testing.assert_array_equal(adv, [False, True, True])


def test_sequence_scope_counts_within_each_sequence() -> None:
    rng = np.random.default_rng(0)
    offsets = np.array([0, 10, 10, 11, 40])
    std = rng.random(40).astype(np.float32)
    adv, ent = engine.percentile_masks(std, 0.2, 0.2, offsets=offsets, scope="sequence")
    for a, b in itertools.pairwise(offsets):
        ref_adv, ref_ent = reference_masks(std[a:b], 0.2, 0.2)
        np.testing.assert_array_equal(adv[a:b], ref_adv)
        np.testing.assert_array_equal(ent[a:b], ref_ent)


def test_group_scope_counts_over_each_groups_tokens() -> None:
    rng = np.random.default_rng(1)
    offsets = np.array([0, 5, 12, 20, 21, 30])
    group_ids = np.array([3, 1, 3, 1, 1])
    std = rng.integers(0, 4, 30).astype(np.float64)
    adv, ent = engine.percentile_masks(
        std, 0.25, 0.25, offsets=offsets, group_ids=group_ids, scope="group"
    )
    for g in (1, 3):
        pos = np.concatenate(
            [np.arange(offsets[s], offsets[s + 1]) for s in np.flatnonzero(group_ids == g)]
        )
        ref_adv, ref_ent = reference_masks(std[pos], 0.25, 0.25)
        np.testing.assert_array_equal(adv[pos], ref_adv)
        np.testing.assert_array_equal(ent[pos], ref_ent)


def test_one_group_scope_equals_batch_scope() -> None:
    std = np.random.default_rng(2).random(50)
    offsets = np.array([0, 20, 50])
    by_group = engine.percentile_masks(
        std, offsets=offsets, group_ids=np.array([0, 0]), scope="group"
    )
    by_batch = engine.percentile_masks(std)
    np.testing.assert_array_equal(by_group[0], by_batch[0])
    np.testing.assert_array_equal(by_group[1], by_batch[1])


def test_empty_std_gives_empty_masks() -> None:
    adv, ent = engine.percentile_masks(np.zeros(0, np.float32))
    assert adv.shape == (0,) and ent.shape == (0,)


def test_masks_return_torch_for_torch_input() -> None:
    adv, _ = engine.percentile_masks(torch.arange(10, dtype=torch.float32))
    assert isinstance(adv, torch.Tensor) and adv.dtype == torch.bool and int((~adv).sum()) == 2


def test_rejects_fractions_summing_above_one() -> None:
    with pytest.raises(ValueError, match="low \\+ high: expected at most 1"):
        engine.percentile_masks(np.zeros(4), low=0.6, high=0.5)


@pytest.mark.parametrize("kwargs", [{"low": -0.1}, {"high": 1.2}, {"low": float("nan")}])
def test_rejects_fractions_outside_unit_interval(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="(low|high): expected a finite number in"):
        engine.percentile_masks(np.zeros(4), **kwargs)


def test_rejects_nan_std() -> None:
    with pytest.raises(ValueError, match="std: expected finite values, found NaN at index 2"):
        engine.percentile_masks(np.array([0.0, 1.0, np.nan]))


def test_sequence_scope_requires_offsets() -> None:
    with pytest.raises(ValueError, match='offsets: required when scope="sequence"'):
        engine.percentile_masks(np.zeros(4), scope="sequence")


def test_group_scope_requires_group_ids_of_sequence_count() -> None:
    with pytest.raises(ValueError, match="group_ids: expected length 2"):
        engine.percentile_masks(np.zeros(4), offsets=[0, 2, 4], group_ids=[0], scope="group")


def test_rejects_unknown_scope() -> None:
    with pytest.raises(ValueError, match="scope: expected one of"):
        engine.percentile_masks(np.zeros(4), scope="token")
