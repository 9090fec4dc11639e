"""engine.group_advantages and engine.broadcast_to_tokens against per-group numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asyppo import engine
from hypothesis import given
from hypothesis import strategies as st


def reference(scores: np.ndarray, group_ids: np.ndarray, how: str, eps: float) -> np.ndarray:
    out = np.zeros(len(scores))
    for g in np.unique(group_ids):
        idx = np.flatnonzero(group_ids == g)
        r = scores[idx].astype(np.float64)
        if len(idx) == 1:
            continue
        if how == "grpo":
            out[idx] = (r - r.mean()) / (r.std(ddof=1) + eps)
        elif how == "drgrpo":
            out[idx] = r - r.mean()
        else:
            out[idx] = r - (r.sum() - r) / (len(r) - 1)
    return out


@pytest.mark.parametrize("how", ["grpo", "drgrpo", "rloo"])
@given(
    group_ids=st.lists(st.integers(0, 5), min_size=0, max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
def test_group_advantages_match_reference(how: str, group_ids: list[int], seed: int) -> None:
    ids = np.array(group_ids, dtype=np.int64)
    scores = np.random.default_rng(seed).integers(0, 2, len(ids)).astype(np.float64)
    out = engine.group_advantages(scores, ids, how=how, eps=1e-6)
    np.testing.assert_allclose(out, reference(scores, ids, how, 1e-6), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("how", ["grpo", "drgrpo", "rloo"])
@pytest.mark.parametrize("size", [2, 4, 8, 16, 32, 64, 3])
def test_equal_sized_ascending_groups_match_reference(how: str, size: int) -> None:
    # The usual layout (n samples per prompt, prompts in order) has its own code per size.
    n_groups = 37  # not a multiple of the 4 groups computed side by side
    ids = np.repeat(np.arange(n_groups) * 3 + 5, size)
    scores = np.random.default_rng(size).normal(size=len(ids))
    out = engine.group_advantages(scores, ids, how=how, eps=1e-6)
    np.testing.assert_allclose(out, reference(scores, ids, how, 1e-6), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "ids",
    [
        [0] * 8 + [1] * 8 + [2] * 7 + [3] * 9,  # one run shorter, one longer
        [1] * 8 + [0] * 8 + [2] * 8 + [3] * 8,  # equal sizes, ids not ascending
        [0] * 8 + [1] * 8 + [0] * 8 + [2] * 8,  # equal sizes, a group split in two runs
    ],
)
def test_layouts_that_only_start_regular_still_match_reference(ids: list[int]) -> None:
    group_ids = np.array(ids)
    scores = np.random.default_rng(0).normal(size=len(ids))
    out = engine.group_advantages(scores, group_ids, how="grpo", eps=1e-6)
    np.testing.assert_allclose(
        out, reference(scores, group_ids, "grpo", 1e-6), rtol=1e-12, atol=1e-12
    )


def test_group_advantages_keep_float32() -> None:
    out = engine.group_advantages(np.array([1.0, 0.0], np.float32), np.array([0, 0]))
    assert out.dtype == np.float32


def test_singleton_group_gets_zero_advantage() -> None:
    for how in ("grpo", "drgrpo", "rloo"):
        assert engine.group_advantages(np.array([5.0]), np.array([9]), how=how)[0] == 0.0


def test_all_equal_group_gets_zero_grpo_advantage() -> None:
    np.testing.assert_array_equal(
        engine.group_advantages(np.ones(4), np.zeros(4, np.int64)), np.zeros(4)
    )


def test_group_advantages_return_torch_for_torch_scores() -> None:
    out = engine.group_advantages(torch.tensor([1.0, 0.0]), torch.tensor([0, 0]), how="drgrpo")
    torch.testing.assert_close(out, torch.tensor([0.5, -0.5]))


def test_group_advantages_reject_nan_scores() -> None:
    with pytest.raises(ValueError, match="scores: expected finite values"):
        engine.group_advantages(np.array([np.nan, 1.0]), np.array([0, 0]))


def test_group_advantages_reject_length_mismatch() -> None:
    with pytest.raises(ValueError, match="group_ids: expected length 2"):
        engine.group_advantages(np.zeros(2), np.zeros(3, np.int64))


def test_group_advantages_reject_negative_eps() -> None:
    with pytest.raises(ValueError, match="eps: expected a finite number >= 0"):
        engine.group_advantages(np.zeros(2), np.zeros(2, np.int64), eps=-1.0)


def test_group_advantages_reject_unknown_baseline() -> None:
    with pytest.raises(ValueError, match="how: expected one of"):
        engine.group_advantages(np.zeros(2), np.zeros(2, np.int64), how="ppo")


@pytest.mark.parametrize(
    "per_seq",
    [
        np.array([1.5, -2.0, 3.0]),
        np.array([1.5, -2.0, 3.0], np.float32),
        np.array([4, 5, 6]),
        np.array([True, False, True]),
    ],
)
def test_broadcast_matches_numpy_repeat(per_seq: np.ndarray) -> None:
    offsets = np.array([0, 2, 2, 5])
    out = engine.broadcast_to_tokens(per_seq, offsets)
    np.testing.assert_array_equal(out, np.repeat(per_seq, np.diff(offsets)))
    assert out.dtype == per_seq.dtype


def test_broadcast_over_large_batch_matches_numpy_repeat() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 3000, 200)
    per_seq = rng.normal(size=200).astype(np.float32)
    out = engine.broadcast_to_tokens(per_seq, np.concatenate([[0], np.cumsum(lengths)]))
    np.testing.assert_array_equal(out, np.repeat(per_seq, lengths))


def test_broadcast_rejects_wrong_number_of_values() -> None:
    with pytest.raises(ValueError, match=r"per_seq: expected length 2 \(len\(offsets\) - 1\)"):
        engine.broadcast_to_tokens(np.zeros(3), np.array([0, 1, 2]))


def test_broadcast_rejects_bad_offsets() -> None:
    with pytest.raises(ValueError, match="offsets"):
        engine.broadcast_to_tokens(np.zeros(2), np.array([0, 3, 2]))
