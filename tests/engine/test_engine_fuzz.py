"""Fuzzing every kernel of the facade: each call returns its documented shape and dtype, or raises
ValueError or TypeError -- never another exception, a panic or a crash.

Arrays stay tiny; what is adversarial is the scalars (counts, budgets, seeds, fractions up to
``2**70``, negative, NaN) and the values of integer arrays (offsets and lengths up to
``2**63 - 1``): sizes the engine must refuse before it allocates anything. 400 cases per
function, a few milliseconds each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from asyppo import engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

CASES = settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], database=None)

EDGES = [2**16, 2**16 + 1, 2**31, 2**40, 2**62, 2**63 - 1]
int64s = st.one_of(st.integers(-2, 12), st.sampled_from([-(2**63), *EDGES]))
ints = st.one_of(int64s, st.sampled_from([2**63, 2**64, 2**70, -(2**70)]))
int_arrays = st.lists(int64s, max_size=8).map(lambda xs: np.array(xs, dtype=np.int64))
# Offsets that are often valid, so that the kernels get past them.
offsets = st.one_of(
    int_arrays,
    st.lists(st.integers(0, 3), max_size=6).map(lambda xs: np.cumsum([0, *xs], dtype=np.int64)),
)
float_arrays = hnp.arrays(
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 8),
    elements=st.floats(-1e6, 1e6, width=32) | st.sampled_from([np.nan, np.inf]),
)
reals = st.one_of(st.floats(), st.integers(-2, 2), st.sampled_from([0.2, 0.5, 1.0, 2**70]))
seeds = st.one_of(ints, st.none())


def options(*valid: str) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(valid), st.text(max_size=3), st.none(), st.integers(0, 2))


def returns_or_refuses(call: Callable[[], Any], check: Callable[[Any], None]) -> None:
    """``check(call())``, unless the call raises ValueError or TypeError (anything else fails)."""
    try:
        result = call()
    except (ValueError, TypeError):
        return
    check(result)


def index_lists(parts: list[np.ndarray], n: int) -> None:
    """int64 index arrays, ascending within each, covering ``range(n)`` exactly once."""
    assert all(p.dtype == np.int64 and p.ndim == 1 and np.all(np.diff(p) > 0) for p in parts)
    flat = np.concatenate([np.zeros(0, np.int64), *parts])
    assert np.array_equal(np.sort(flat), np.arange(n))


@CASES
@given(r=float_arrays, v=float_arrays, o=offsets, gamma=reals, lam=reals)
def test_gae(r: np.ndarray, v: np.ndarray, o: np.ndarray, gamma: Any, lam: Any) -> None:
    def check(out: tuple[np.ndarray, np.ndarray]) -> None:
        assert all(a.shape == r.shape and a.dtype == np.result_type(r, v) for a in out)

    returns_or_refuses(lambda: engine.gae(r, v, o, gamma, lam), check)


@CASES
@given(
    values=hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
        elements=st.floats(-10, 10, width=32) | st.just(np.nan),
    ),
    how=options("mean", "min"),
)
def test_aggregate_values(values: np.ndarray, how: Any) -> None:
    def check(out: tuple[np.ndarray, np.ndarray]) -> None:
        assert values.ndim == 2 and values.shape[0] >= 1
        assert all(a.shape == values.shape[1:] and a.dtype == values.dtype for a in out)

    returns_or_refuses(lambda: engine.aggregate_values(values, how), check)


@CASES
@given(ids=int_arrays, m=ints, seed=seeds, mode=options("disjoint", "shared", "random"))
def test_shard_groups(ids: np.ndarray, m: Any, seed: Any, mode: Any) -> None:
    def check(out: np.ndarray) -> None:
        assert out.shape == (m, len(ids)) and out.dtype == np.bool_
        per_sequence = out.sum(axis=0)
        assert np.all(per_sequence == (m if mode == "shared" else 1))

    returns_or_refuses(lambda: engine.shard_groups(ids, m, seed, mode), check)


@CASES
@given(
    std=float_arrays,
    low=reals,
    high=reals,
    o=st.one_of(st.none(), offsets),
    g=st.one_of(st.none(), int_arrays),
    scope=options("batch", "sequence", "group"),
)
def test_percentile_masks(std: np.ndarray, low: Any, high: Any, o: Any, g: Any, scope: Any) -> None:
    def check(out: tuple[np.ndarray, np.ndarray]) -> None:
        assert all(a.shape == std.shape and a.dtype == np.bool_ for a in out)
        assert np.all(out[0] | out[1])  # no token is in both masks

    returns_or_refuses(
        lambda: engine.percentile_masks(std, low, high, offsets=o, group_ids=g, scope=scope), check
    )


@CASES
@given(scores=float_arrays, ids=int_arrays, how=options("grpo", "drgrpo", "rloo"), eps=reals)
def test_group_advantages(scores: np.ndarray, ids: np.ndarray, how: Any, eps: Any) -> None:
    def check(out: np.ndarray) -> None:
        assert out.shape == scores.shape and out.dtype == scores.dtype

    returns_or_refuses(lambda: engine.group_advantages(scores, ids, how, eps), check)


@CASES
@given(
    per_seq=st.one_of(float_arrays, int_arrays, int_arrays.map(lambda a: a > 0)),
    o=offsets,
)
def test_broadcast_to_tokens(per_seq: np.ndarray, o: np.ndarray) -> None:
    def check(out: np.ndarray) -> None:
        np.testing.assert_array_equal(out, np.repeat(per_seq, np.diff(o)))

    returns_or_refuses(lambda: engine.broadcast_to_tokens(per_seq, o), check)


@CASES
@given(
    x=float_arrays,
    mask=st.one_of(
        hnp.arrays(np.bool_, st.integers(0, 8)),
        hnp.arrays(np.int64, st.integers(0, 8), elements=st.integers(-2, 2)),
    ),
    shift=st.booleans(),
)
def test_masked_whiten(x: np.ndarray, mask: np.ndarray, shift: bool) -> None:
    def check(out: np.ndarray) -> None:
        assert out.shape == x.shape and out.dtype == x.dtype

    returns_or_refuses(lambda: engine.masked_whiten(x, mask, shift), check)


@CASES
@given(
    lengths=int_arrays,
    budget=ints,
    padded=st.booleans(),
    prompts=st.one_of(st.none(), int_arrays),
)
def test_pack_microbatches(lengths: np.ndarray, budget: Any, padded: bool, prompts: Any) -> None:
    # Costs in Python ints: exact, however long the sequences.
    rest, prompt = lengths.tolist(), [0] * len(lengths) if prompts is None else prompts.tolist()

    def check(parts: list[np.ndarray]) -> None:
        index_lists(parts, len(lengths))
        for p in (q.tolist() for q in parts):
            if padded:
                cost = len(p) * (max(prompt[i] for i in p) + max(rest[i] for i in p))
            else:
                cost = sum(prompt[i] + rest[i] for i in p)
            assert cost <= budget or len(p) == 1

    returns_or_refuses(
        lambda: engine.pack_microbatches(lengths, budget, padded, prompt_lengths=prompts), check
    )


@CASES
@given(lengths=int_arrays, k=st.one_of(st.integers(-2, 12), ints.filter(lambda k: k != 2**16)))
def test_balanced_partition(lengths: np.ndarray, k: Any) -> None:
    def check(parts: list[np.ndarray]) -> None:
        assert len(parts) == k
        index_lists(parts, len(lengths))
        sums = [sum(lengths[p].tolist()) for p in parts]
        assert sums == sorted(sums, reverse=True)
        assert sums[0] - sums[-1] <= max(lengths.tolist(), default=0)

    returns_or_refuses(lambda: engine.balanced_partition(lengths, k), check)


def test_the_largest_counts_are_served() -> None:
    """2**16 parts or critics, the most there may be (kept out of the cases above: slow to check)."""
    parts = engine.balanced_partition(np.array([5, 3]), 2**16)
    assert len(parts) == 2**16 and [p.tolist() for p in parts[:3]] == [[0], [1], []]
    assert engine.shard_groups(np.zeros(3, np.int64), 2**16, 0).shape == (2**16, 3)
