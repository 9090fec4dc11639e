"""runtime.replicas: one handle over N data-parallel workers. Split calls give the batch's
result in its token order whatever the split, every worker taking part (with an empty share if
need be); other calls reach every worker and return rank 0's result; the first failure fails the
call at once."""

from __future__ import annotations

import numpy as np
import pytest
from asyppo.engine import TrajectoryBuffer
from asyppo.runtime import make_runtime
from asyppo.runtime.replicas import ReplicaGroup, shares, worker_name
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_roles import Scorer


def group(n: int) -> ReplicaGroup:
    runtime = make_runtime("inline")
    workers = [runtime.spawn(worker_name("scorer", r), Scorer, rank=r) for r in range(n)]
    return ReplicaGroup("scorer", workers, split=frozenset({"scores"}))


def batch_of(lengths: list[tuple[int, int]]) -> TrajectoryBuffer:
    buf = TrajectoryBuffer()
    rng = np.random.default_rng(len(lengths))
    for i, (p, r) in enumerate(lengths):
        buf.append(rng.integers(1, 50, p).tolist(), rng.integers(1, 50, r).tolist(), group_id=i, reward=0.0)
    return buf


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.tuples(st.integers(1, 6), st.integers(0, 9)), min_size=0, max_size=12),
    n=st.integers(2, 5),
)
def test_a_split_call_returns_the_whole_batchs_result_in_token_order(lengths: list[tuple[int, int]], n: int) -> None:
    batch = batch_of(lengths)
    result = group(n).call("scores", batch, 0.5).result()
    np.testing.assert_array_equal(result, batch.response_ids.astype(np.float32) * 0.5)  # the reference: one worker


def test_shares_cover_the_batch_once_and_balance_its_tokens() -> None:
    batch = batch_of([(3, 8), (2, 1), (5, 5), (1, 9), (4, 0), (2, 2)])
    parts = shares(batch, 2)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(batch)))
    tokens = batch.prompt_lengths + batch.response_lengths
    sums = [int(tokens[p].sum()) for p in parts]
    assert abs(sums[0] - sums[1]) <= int(tokens.max())


def test_each_worker_gets_only_its_share_and_an_idle_one_an_empty_batch() -> None:
    replicas = group(3)
    replicas.call("scores", batch_of([(1, 2), (1, 3)]), 1.0).result()  # two sequences, three workers
    seen = [w.call("calls").result() for w in replicas.workers]
    assert sorted(seen) == [["scores:0"], ["scores:1"], ["scores:1"]]


def test_other_calls_reach_every_worker_and_return_rank_0s_result() -> None:
    replicas = group(3)
    assert replicas.call("whoami").result() == 0
    assert [w.call("calls").result() for w in replicas.workers] == [["whoami"]] * 3


def test_the_first_failing_worker_fails_the_call() -> None:
    replicas = group(3)
    with pytest.raises(RuntimeError, match="worker 2 failed"):
        replicas.call("fail_on", 2).result()


def test_a_group_needs_workers() -> None:
    with pytest.raises(ValueError, match="needs workers"):
        ReplicaGroup("scorer", [])
