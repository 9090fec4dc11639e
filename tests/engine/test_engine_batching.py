"""engine.pack_microbatches and engine.balanced_partition: coverage, budgets, balance."""

from __future__ import annotations

import numpy as np
import pytest
from asyppo import engine
from hypothesis import given
from hypothesis import strategies as st

lengths_st = st.lists(st.integers(0, 500), min_size=0, max_size=60)


def covers_once(parts: list[np.ndarray], n: int) -> bool:
    return sorted(np.concatenate([np.zeros(0, np.int64), *parts]).tolist()) == list(range(n))


@given(lengths=lengths_st, budget=st.integers(1, 2000))
def test_microbatches_cover_each_sequence_once_within_token_budget(
    lengths: list[int], budget: int
) -> None:
    lens = np.array(lengths, dtype=np.int64)
    parts = engine.pack_microbatches(lens, budget)
    assert covers_once(parts, len(lens))
    for p in parts:
        assert lens[p].sum() <= budget or len(p) == 1
        assert np.all(np.diff(p) > 0)


@given(lengths=lengths_st, budget=st.integers(1, 2000))
def test_padded_microbatches_keep_count_times_longest_within_budget(
    lengths: list[int], budget: int
) -> None:
    lens = np.array(lengths, dtype=np.int64)
    parts = engine.pack_microbatches(lens, budget, padded=True)
    assert covers_once(parts, len(lens))
    for p in parts:
        assert len(p) * lens[p].max() <= budget or len(p) == 1


@given(
    pairs=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 100)), max_size=60),
    budget=st.integers(1, 2000),
    padded=st.booleans(),
)
def test_prompt_lengths_are_budgeted_as_their_own_padded_block(
    pairs: list[tuple[int, int]], budget: int, padded: bool
) -> None:
    """With prompts padded apart (left) from the rest (right), a micro-batch's ``[B, P + R]``
    input is ``count * (longest prompt + longest rest)``; packed, both simply count."""
    lens = np.array([r for r, _ in pairs], dtype=np.int64)
    prompts = np.array([p for _, p in pairs], dtype=np.int64)
    parts = engine.pack_microbatches(lens, budget, padded=padded, prompt_lengths=prompts)
    assert covers_once(parts, len(lens))
    for p in parts:
        cost = (
            len(p) * (prompts[p].max() + lens[p].max()) if padded else (prompts[p] + lens[p]).sum()
        )
        assert cost <= budget or len(p) == 1


def test_prompt_lengths_change_nothing_when_all_zero() -> None:
    lens = np.random.default_rng(3).integers(0, 300, 50)
    for padded in (False, True):
        plain = engine.pack_microbatches(lens, 700, padded=padded)
        zero = engine.pack_microbatches(lens, 700, padded=padded, prompt_lengths=np.zeros(50, int))
        assert [p.tolist() for p in plain] == [p.tolist() for p in zero]


def test_prompt_lengths_of_another_length_are_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"prompt_lengths: expected length 2 \(as lengths\), got 1"
    ):
        engine.pack_microbatches(np.array([1, 8]), 36, padded=True, prompt_lengths=np.array([8]))


def test_oversized_sequence_gets_its_own_microbatch() -> None:
    parts = engine.pack_microbatches(np.array([3, 50, 4]), 10)
    assert [p.tolist() for p in parts] == [[1], [0, 2]]


def test_microbatches_of_empty_batch_is_empty() -> None:
    assert engine.pack_microbatches(np.zeros(0, np.int64), 10) == []


def test_best_fit_packs_into_few_microbatches() -> None:
    lens = np.array([6, 4, 5, 5, 3, 7])  # 30 tokens: three full micro-batches of 10 exist
    assert len(engine.pack_microbatches(lens, 10)) == 3


@given(lengths=lengths_st, k=st.integers(1, 6))
def test_partition_covers_once_with_spread_at_most_the_longest(lengths: list[int], k: int) -> None:
    lens = np.array(lengths, dtype=np.int64)
    parts = engine.balanced_partition(lens, k)
    assert len(parts) == k and covers_once(parts, len(lens))
    sums = [int(lens[p].sum()) for p in parts]
    assert max(sums) - min(sums) <= max(lengths, default=0)


def longest_processing_time(lengths: list[int], k: int) -> list[list[int]]:
    """Plain-Python LPT with the documented ties: sequences by decreasing length then index, each
    to the part with the smallest sum so far (then the lowest part); parts then ordered by
    decreasing sum (then part number), indices ascending."""
    parts: list[tuple[int, list[int]]] = [(0, []) for _ in range(k)]
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        p = min(range(k), key=lambda p: (parts[p][0], p))
        parts[p] = (parts[p][0] + lengths[i], [*parts[p][1], i])
    order = sorted(range(k), key=lambda p: (-parts[p][0], p))
    return [sorted(parts[p][1]) for p in order]


def spread(lengths: np.ndarray, parts: list[np.ndarray] | list[list[int]]) -> int:
    sums = [int(lengths[np.asarray(p, np.int64)].sum()) for p in parts]
    return max(sums) - min(sums)


@given(
    lengths=st.one_of(
        lengths_st,
        st.lists(st.integers(0, 4), max_size=60),  # many ties
        st.lists(st.integers(0, 2000), min_size=64, max_size=400),  # many items per part
    ),
    k=st.integers(1, 9),
)
def test_partition_is_longest_processing_time_first(lengths: list[int], k: int) -> None:
    """The documented rule exactly, and its guarantees: parts by decreasing sum, the spread at
    most the longest length, the heaviest part within Graham's list-scheduling bound
    (T/k + (1 - 1/k) * longest), and optimal (the longest length) when no part needs two."""
    lens = np.array(lengths, dtype=np.int64)
    parts = engine.balanced_partition(lens, k)
    assert [p.tolist() for p in parts] == longest_processing_time(lengths, k)
    assert covers_once(parts, len(lens)) and all(np.all(np.diff(p) > 0) for p in parts)
    sums = [int(lens[p].sum()) for p in parts]
    assert sums == sorted(sums, reverse=True)
    assert sums[0] - sums[-1] <= max(lengths, default=0)
    longest = max(lengths, default=0)
    assert k * sums[0] <= sum(lengths) + (k - 1) * longest
    if len(lengths) <= k:
        assert sums[0] == longest


@pytest.mark.parametrize("order", ["random", "ascending", "descending"])
@pytest.mark.parametrize("n", [1024, 4096])
def test_partition_of_a_rollout_batch_is_nearly_even(n: int, order: str) -> None:
    lengths = np.random.default_rng(n).integers(1, 8193, n)
    if order != "random":
        lengths = np.sort(lengths)[:: 1 if order == "ascending" else -1]
    parts = engine.balanced_partition(lengths, 8)
    assert covers_once(parts, n)
    # The last sequences placed are a few tokens long, and so is the spread: at most 64 tokens,
    # about 0.01 % of a part's ~0.5M (1,024 sequences) or ~2M (4,096).
    assert spread(lengths, parts) <= 64


def test_two_way_partition_by_hand() -> None:
    # 8 -> A, 7 -> B, 6 -> B (7 < 8), 5 -> A (8 < 13), 4 -> A (13 = 13, lowest part): A = {8, 5, 4}
    # = 17, B = {7, 6} = 13; the optimum is 15 / 15 ({8, 7} vs {6, 5, 4}): it is a heuristic.
    lens = np.array([8, 7, 6, 5, 4])
    parts = engine.balanced_partition(lens, 2)
    assert [sorted(lens[p].tolist()) for p in parts] == [[4, 5, 8], [6, 7]]


def test_more_parts_than_sequences_leaves_empty_parts() -> None:
    parts = engine.balanced_partition(np.array([3, 1]), 4)
    assert [p.tolist() for p in parts] == [[0], [1], [], []]


def test_partition_rejects_lengths_whose_sum_overflows() -> None:
    with pytest.raises(ValueError, match=r"lengths: expected a sum of at most 2\^63 - 1"):
        engine.balanced_partition(np.array([2**62, 2**62, 1]), 2)


def test_partition_is_deterministic() -> None:
    lens = np.random.default_rng(0).integers(1, 9000, 1024)
    a = engine.balanced_partition(lens, 8)
    b = engine.balanced_partition(lens, 8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize(
    "fn,kwargs,match",
    [
        (engine.pack_microbatches, {"max_tokens": 0}, "max_tokens: expected at least 1, got 0"),
        (
            engine.balanced_partition,
            {"n_parts": 0},
            r"n_parts: expected an integer in \[1, 65536\]",
        ),
        (
            engine.balanced_partition,
            {"n_parts": 2**31},
            r"n_parts: expected an integer in \[1, 65536\]",
        ),
    ],
)
def test_planning_rejects_non_positive_budget_or_parts(fn, kwargs, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        fn(np.array([1, 2]), **kwargs)


def test_planning_rejects_negative_lengths() -> None:
    with pytest.raises(
        ValueError, match="lengths: expected non-negative lengths, got -1 at index 1"
    ):
        engine.pack_microbatches(np.array([1, -1]), 4)
