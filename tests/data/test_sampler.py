"""Specification of `PromptSampler`: seeded epochs and exact resumption."""

from __future__ import annotations

import itertools
import json

import pytest
from asyppo.data import PromptRecord, PromptSampler


def records(n: int) -> list[PromptRecord]:
    return [PromptRecord(i, f"p{i}", str(i), f"mem:{i}") for i in range(n)]


def indices(batches: list[list[PromptRecord]]) -> list[list[int]]:
    return [[r.index for r in b] for b in batches]


def take(sampler: PromptSampler, n: int) -> list[list[int]]:
    return indices(list(itertools.islice(sampler, n)))


def test_an_epoch_visits_each_record_at_most_once() -> None:
    batches = take(PromptSampler(records(10), batch_size=3, seed=0), 3)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat)) == 9


def test_epochs_use_different_orders_and_count_up() -> None:
    sampler = PromptSampler(records(10), batch_size=5, seed=0)
    first, second = take(sampler, 2), take(sampler, 2)
    assert sampler.epoch == 1
    assert sorted(itertools.chain(*first)) == sorted(itertools.chain(*second)) == list(range(10))
    assert first != second


def test_same_seed_same_batches_other_seed_other_batches() -> None:
    a = take(PromptSampler(records(20), batch_size=4, seed=1), 12)
    b = take(PromptSampler(records(20), batch_size=4, seed=1), 12)
    c = take(PromptSampler(records(20), batch_size=4, seed=2), 12)
    assert a == b and a != c


@pytest.mark.parametrize("stop_after", [0, 1, 3, 5, 7])
def test_resumed_sampler_yields_exactly_the_uninterrupted_batches(stop_after: int) -> None:
    uninterrupted = take(PromptSampler(records(17), batch_size=4, seed=9), 12)
    first = PromptSampler(records(17), batch_size=4, seed=9)
    head = take(first, stop_after)
    state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint stores it
    resumed = PromptSampler(records(17), batch_size=4, seed=9)
    resumed.load_state_dict(state)
    assert head + take(resumed, 12 - stop_after) == uninterrupted


def test_state_for_other_settings_is_rejected() -> None:
    state = PromptSampler(records(10), batch_size=2, seed=0).state_dict()
    with pytest.raises(ValueError, match="saved with batch_size=2, this sampler has 5"):
        PromptSampler(records(10), batch_size=5, seed=0).load_state_dict(state)
    with pytest.raises(ValueError, match="saved with n_records=10, this sampler has 11"):
        PromptSampler(records(11), batch_size=2, seed=0).load_state_dict(state)


def test_batch_larger_than_dataset_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 3\]"):
        PromptSampler(records(3), batch_size=4, seed=0)
