"""The trainer's model input over a TrajectoryBuffer: prompts left-padded, responses right-padded,
against hand-written expectations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asyppo.engine import TrajectoryBuffer
from asyppo.trainer.model_input import model_input

PAD = 0


def two_sequences() -> TrajectoryBuffer:
    return TrajectoryBuffer.from_packed(
        np.array([5, 6, 7, 8]), np.array([0, 3, 4]), np.array([10, 11, 12, 13, 14]), np.array([0, 2, 5]),
        group_ids=np.array([0, 1]),
    )


def test_model_input_left_pads_prompts_and_right_pads_responses() -> None:
    x = model_input(two_sequences(), PAD)
    assert x.prompt_width == 3 and x.response_width == 3
    assert x.input_ids.tolist() == [[5, 6, 7, 10, 11, PAD], [PAD, PAD, 8, 12, 13, 14]]
    assert x.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert x.labels.tolist() == [[10, 11, 0], [12, 13, 14]]
    assert x.response_mask.tolist() == [[True, True, False], [True, True, True]]


def test_position_ids_ignore_left_padding() -> None:
    x = model_input(two_sequences(), PAD)
    assert x.position_ids[0].tolist()[:5] == [0, 1, 2, 3, 4]
    assert x.position_ids[1].tolist()[2:] == [0, 1, 2, 3]


def test_response_slice_picks_the_positions_that_predict_each_response_token() -> None:
    x = model_input(two_sequences(), PAD)
    # Position t's output predicts token t+1: column P-1+j must hold response token j's predictor.
    predicted_next = torch.roll(x.input_ids, shifts=-1, dims=1)
    assert torch.equal(x.response_slice(predicted_next)[x.response_mask], x.labels[x.response_mask])


def test_packed_round_trip_preserves_order() -> None:
    x = model_input(two_sequences(), PAD)
    packed = np.arange(5, dtype=np.float32)
    assert x.to_packed(x.from_packed(packed)).tolist() == packed.tolist()


def test_packed_order_is_the_buffer_order_of_response_tokens() -> None:
    batch = two_sequences()
    x = model_input(batch, PAD)
    assert x.to_packed(x.labels).tolist() == batch.response_ids.tolist()


def test_a_sequence_with_an_empty_prompt_is_refused() -> None:
    batch = TrajectoryBuffer.from_packed([5], [0, 1, 1], [10, 11], [0, 1, 2], group_ids=[0, 1])
    with pytest.raises(ValueError, match="sequence 1 has an empty prompt"):
        model_input(batch, PAD)


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="holds no sequences"):
        model_input(TrajectoryBuffer(), PAD)
