"""engine.shard_groups: disjoint, balanced, seeded dealing of each group to the critics."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from asyppo import engine
from hypothesis import given
from hypothesis import strategies as st


def per_group_counts(assign: np.ndarray, group_ids: np.ndarray) -> dict[int, np.ndarray]:
    return {g: assign[:, group_ids == g].sum(axis=1) for g in np.unique(group_ids)}


@given(
    group_ids=st.lists(st.integers(0, 7), min_size=0, max_size=80),
    m=st.integers(1, 6),
    seed=st.integers(0, 2**64 - 1),
)
def test_disjoint_shards_cover_once_with_floor_or_ceil_of_each_group(
    group_ids: list[int], m: int, seed: int
) -> None:
    ids = np.array(group_ids, dtype=np.int64)
    assign = engine.shard_groups(ids, m, seed)
    assert assign.shape == (m, len(ids)) and assign.dtype == np.bool_
    np.testing.assert_array_equal(assign.sum(axis=0), np.ones(len(ids)))
    for g, counts in per_group_counts(assign, ids).items():
        n_g = int((ids == g).sum())
        assert set(counts.tolist()) <= {n_g // m, -(-n_g // m)}
    totals = assign.sum(axis=1)
    assert totals.max() - totals.min() <= 1


def test_groups_not_divisible_by_critics_still_balance_overall() -> None:
    ids = np.repeat(np.arange(10), 3)  # 10 groups of 3 over 2 critics
    assign = engine.shard_groups(ids, 2, seed=0)
    assert sorted(assign.sum(axis=1).tolist()) == [15, 15]


def test_one_critic_gets_everything() -> None:
    assert engine.shard_groups(np.array([0, 0, 1]), 1, seed=3).all()


def test_single_group_is_split_evenly() -> None:
    assign = engine.shard_groups(np.zeros(8, np.int64), 4, seed=5)
    np.testing.assert_array_equal(assign.sum(axis=1), [2, 2, 2, 2])


def test_same_seed_same_shards_and_other_seed_other_shards() -> None:
    ids = np.repeat(np.arange(4), 8)
    a = engine.shard_groups(ids, 2, seed=1)
    np.testing.assert_array_equal(a, engine.shard_groups(ids, 2, seed=1))
    assert not np.array_equal(a, engine.shard_groups(ids, 2, seed=2))


def shuffle_and_deal_distribution(ids: np.ndarray, m: int) -> dict[tuple[int, ...], float]:
    """Exact law of the critic of each sequence under the documented rule: every group shuffled
    uniformly (all orders enumerated), groups in order of first appearance, dealt round-robin with
    the dealing position carried over."""
    groups = [np.flatnonzero(ids == g) for g in dict.fromkeys(ids.tolist())]
    law: Counter[tuple[int, ...]] = Counter()
    for orders in itertools.product(*(itertools.permutations(g) for g in groups)):
        critic = np.empty(len(ids), np.int64)
        critic[np.concatenate(orders).astype(np.int64)] = np.arange(len(ids)) % m
        law[tuple(critic.tolist())] += 1
    total = sum(law.values())
    return {assignment: count / total for assignment, count in law.items()}


@pytest.mark.parametrize(
    ("ids", "m"),
    [
        (np.repeat([0, 1], 4), 2),  # groups of one size side by side, ascending
        (np.array([7, 7, 7, 7, 7]), 2),  # odd group: the larger half goes to the critic on turn
        (np.array([1, 0, 1, 0, 1, 0, 2]), 2),  # interleaved groups, the turn passing between them
        (np.zeros(5, np.int64), 3),  # three critics
    ],
)
def test_deal_has_the_law_of_shuffling_and_dealing(ids: np.ndarray, m: int) -> None:
    law = shuffle_and_deal_distribution(ids, m)
    draws = 4000
    seen = Counter(
        tuple(engine.shard_groups(ids, m, seed).argmax(axis=0).tolist()) for seed in range(draws)
    )
    assert set(seen) <= set(law)
    chi2 = sum((seen[a] - draws * p) ** 2 / (draws * p) for a, p in law.items())
    df = len(law) - 1
    critical = (
        df * (1 - 2 / (9 * df) + 3.09 * (2 / (9 * df)) ** 0.5) ** 3
    )  # 0.1 % (Wilson-Hilferty)
    assert chi2 < critical, (chi2, critical)


def test_large_groups_are_halved_evenly_and_without_bias() -> None:
    # One group of 101 then one of 100: 51/50, the turn passing, then 50/50.
    ids = np.repeat([4, 9], [101, 100])
    first = np.zeros(201)
    for seed in range(400):
        assign = engine.shard_groups(ids, 2, seed)
        assert assign[:, :101].sum(axis=1).tolist() == [51, 50]
        assert assign[:, 101:].sum(axis=1).tolist() == [50, 50]
        first += assign[0]
    # Each response goes to the first critic with probability 51/101 or 1/2: within 5 sd.
    p = np.r_[np.full(101, 51 / 101), np.full(100, 0.5)]
    assert np.all(np.abs(first - 400 * p) < 5 * np.sqrt(400 * p * (1 - p)))


def test_shared_mode_gives_every_critic_everything() -> None:
    assert engine.shard_groups(np.array([0, 1, 1]), 3, seed=0, mode="shared").all()


def test_random_mode_is_a_balanced_partition_that_ignores_groups() -> None:
    ids = np.repeat(np.arange(64), 2)  # groups of 2 over 2 critics
    assign = engine.shard_groups(ids, 2, seed=0, mode="random")
    np.testing.assert_array_equal(assign.sum(axis=0), np.ones(128))
    np.testing.assert_array_equal(assign.sum(axis=1), [64, 64])
    # Disjoint dealing would give each critic one response of every pair; a random split does not.
    assert any(c.tolist() != [1, 1] for c in per_group_counts(assign, ids).values())


def test_empty_batch_gives_empty_rows() -> None:
    assert engine.shard_groups(np.zeros(0, np.int64), 2, seed=0).shape == (2, 0)


@pytest.mark.parametrize("m", [0, -1, 2**16 + 1, 2**62])
def test_rejects_critic_counts_outside_1_to_2_pow_16(m: int) -> None:
    with pytest.raises(ValueError, match=r"n_critics: expected an integer in \[1, 65536\]"):
        engine.shard_groups(np.zeros(3, np.int64), m, seed=0)


def test_rejects_negative_seed() -> None:
    with pytest.raises(ValueError, match="seed"):
        engine.shard_groups(np.zeros(3, np.int64), 2, seed=-1)


def test_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="mode: expected one of"):
        engine.shard_groups(np.zeros(3, np.int64), 2, seed=0, mode="round_robin")


def test_rejects_float_group_ids() -> None:
    with pytest.raises(TypeError, match="group_ids: expected an integer dtype"):
        engine.shard_groups(np.zeros(3), 2, seed=0)
