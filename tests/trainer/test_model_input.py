"""Packed <-> padded layout of the trainer's batches, against hand-written expectations."""

from __future__ import annotations

import numpy as np
import torch
from asyppo.trainer.batch import SequenceBatch, model_input

PAD = 0


def two_sequences() -> SequenceBatch:
    return SequenceBatch(
        prompt_ids=np.array([5, 6, 7, 8]),
        prompt_offsets=np.array([0, 3, 4]),
        response_ids=np.array([10, 11, 12, 13, 14]),
        offsets=np.array([0, 2, 5]),
        group_ids=np.array([0, 1]),
    )


def test_model_input_left_pads_prompts_and_right_pads_responses() -> None:
    x = model_input(two_sequences(), PAD)
    assert x.input_ids.tolist() == [[5, 6, 7, 10, 11, PAD], [PAD, PAD, 8, 12, 13, 14]]
    assert x.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert x.position_ids[1].tolist()[2:] == [0, 1, 2, 3]
    assert x.labels.tolist() == [[10, 11, 0], [12, 13, 14]]


def test_response_slice_picks_the_positions_that_predict_each_response_token() -> None:
    x = model_input(two_sequences(), PAD)
    # Position t's output predicts token t+1: the slice must line up with labels.
    predicted_next = torch.roll(x.input_ids, shifts=-1, dims=1)
    assert torch.equal(x.response_slice(predicted_next)[x.response_mask], x.labels[x.response_mask])


def test_packed_round_trip_preserves_order() -> None:
    x = model_input(two_sequences(), PAD)
    packed = np.arange(5, dtype=np.float32)
    assert x.to_packed(x.from_packed(packed)).tolist() == packed.tolist()


def test_select_gathers_whole_sequences_in_the_given_order() -> None:
    sub = two_sequences().select(np.array([1, 0]))
    assert sub.response_ids.tolist() == [12, 13, 14, 10, 11]
    assert sub.prompt_ids.tolist() == [8, 5, 6, 7]
    assert sub.offsets.tolist() == [0, 3, 5]
    assert sub.group_ids.tolist() == [1, 0]
