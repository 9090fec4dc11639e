"""engine.TrajectoryBuffer: building, selecting, micro-batching, padding and unpadding a batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asyppo.engine import TrajectoryBuffer, offsets_from_lengths

PROMPTS = [[11, 12], [13], [14, 15, 16]]
RESPONSES = [[21, 22, 23], [24], []]


def build() -> TrajectoryBuffer:
    buf = TrajectoryBuffer()
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
        lp = -np.arange(1, len(r) + 1, dtype=np.float32) - 10 * i
        values = np.stack([lp, 2 * lp])
        buf.append(
            p,
            r,
            group_id=i // 2,
            reward=float(i),
            policy_version=7,
            old_log_probs=lp,
            values=values,
        )
    return buf


def test_append_packs_prompts_responses_and_metadata() -> None:
    buf = build()
    assert len(buf) == 3 and buf.n_tokens == 4
    np.testing.assert_array_equal(buf.offsets, [0, 3, 4, 4])
    np.testing.assert_array_equal(buf.prompt_offsets, [0, 2, 3, 6])
    np.testing.assert_array_equal(buf.response_ids, [21, 22, 23, 24])
    np.testing.assert_array_equal(buf.group_ids, [0, 0, 1])
    np.testing.assert_array_equal(buf.rewards, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(buf.policy_versions, [7, 7, 7])
    np.testing.assert_array_equal(buf["old_log_probs"], [-1, -2, -3, -11])
    assert buf["values"].shape == (2, 4)


def test_from_packed_equals_appending_one_by_one() -> None:
    a = build()
    b = TrajectoryBuffer.from_packed(
        a.prompt_ids,
        a.prompt_offsets,
        a.response_ids,
        a.offsets,
        group_ids=a.group_ids,
        rewards=a.rewards,
        policy_versions=a.policy_versions,
        old_log_probs=a["old_log_probs"],
        values=a["values"],
    )
    for name in ("prompt_ids", "prompt_offsets", "response_ids", "offsets", "group_ids", "rewards"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a["values"], b["values"])


def test_token_rewards_put_the_scalar_reward_on_the_last_response_token() -> None:
    np.testing.assert_array_equal(build().token_rewards(), [0.0, 0.0, 0.0, 1.0])


def test_select_gathers_sequences_in_the_given_order() -> None:
    sub = build().select([1, 0])
    np.testing.assert_array_equal(sub.response_ids, [24, 21, 22, 23])
    np.testing.assert_array_equal(sub.prompt_ids, [13, 11, 12])
    np.testing.assert_array_equal(sub.offsets, [0, 1, 4])
    np.testing.assert_array_equal(sub["old_log_probs"], [-11, -1, -2, -3])
    np.testing.assert_array_equal(sub["values"][1], [-22, -2, -4, -6])
    np.testing.assert_array_equal(sub.rewards, [1.0, 0.0])


def test_to_padded_lays_out_prompt_then_response_with_masks() -> None:
    out = build().to_padded(pad_id=0)
    np.testing.assert_array_equal(
        out["input_ids"], [[11, 12, 21, 22, 23], [13, 24, 0, 0, 0], [14, 15, 16, 0, 0]]
    )
    np.testing.assert_array_equal(
        out["attention_mask"], [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]
    )
    np.testing.assert_array_equal(
        out["response_mask"], [[0, 0, 1, 1, 1], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(out["old_log_probs"][0], [0, 0, -1, -2, -3])
    assert out["values"].shape == (2, 3, 5)


def test_padded_as_torch_shares_the_numpy_layout() -> None:
    buf = build()
    padded, arrays = buf.to_padded(as_torch=True), buf.to_padded()
    assert all(isinstance(v, torch.Tensor) for v in padded.values())
    assert padded["input_ids"].dtype == torch.int64
    for name, value in arrays.items():
        np.testing.assert_array_equal(padded[name].numpy(), value)


def reference_left_layout(buf: TrajectoryBuffer, pad_id: int) -> dict[str, np.ndarray]:
    """Row by row: pad ++ prompt at columns [0, P), response ++ pad at [P, P+R)."""
    p_width = int(buf.prompt_lengths.max())
    r_width = int(buf.response_lengths.max())
    ids, attention, positions, response = [], [], [], []
    for i in range(len(buf)):
        prompt = buf.prompt_ids[buf.prompt_offsets[i] : buf.prompt_offsets[i + 1]].tolist()
        resp = buf.response_ids[buf.offsets[i] : buf.offsets[i + 1]].tolist()
        left, right = p_width - len(prompt), r_width - len(resp)
        ids.append([pad_id] * left + prompt + resp + [pad_id] * right)
        attention.append([0] * left + [1] * (len(prompt) + len(resp)) + [0] * right)
        n = len(prompt) + len(resp)
        positions.append([0] * left + list(range(n)) + [max(n - 1, 0)] * right)
        response.append([0] * p_width + [1] * len(resp) + [0] * right)
    return {
        "input_ids": np.array(ids),
        "attention_mask": np.array(attention),
        "position_ids": np.array(positions),
        "response_mask": np.array(response),
    }


def test_left_layout_matches_a_row_by_row_reference() -> None:
    buf = build()
    out = buf.to_padded(pad_id=-1, prompt_side="left")
    for name, expected in reference_left_layout(buf, pad_id=-1).items():
        np.testing.assert_array_equal(out[name], expected, err_msg=name)


def test_left_layout_starts_every_response_at_the_longest_prompt_width() -> None:
    out = build().to_padded(prompt_side="left")
    np.testing.assert_array_equal(
        out["input_ids"], [[0, 11, 12, 21, 22, 23], [0, 0, 13, 24, 0, 0], [14, 15, 16, 0, 0, 0]]
    )
    np.testing.assert_array_equal(out["old_log_probs"][0], [0, 0, 0, -1, -2, -3])


def test_position_ids_count_real_tokens_only() -> None:
    out = build().to_padded(prompt_side="left")
    np.testing.assert_array_equal(out["position_ids"][1], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(build().to_padded()["position_ids"][1], [0, 1, 1, 1, 1])


def test_unknown_prompt_side_is_refused() -> None:
    with pytest.raises(ValueError, match="prompt_side: expected 'right' or 'left', got 'top'"):
        build().to_padded(prompt_side="top")  # type: ignore[arg-type]


def test_token_index_gathers_like_select_and_matches_a_per_sequence_reference() -> None:
    buf = build()
    index = [2, 0, -3, 1]  # -3 is sequence 0 again, counted from the end
    starts, ends = buf.offsets[:-1], buf.offsets[1:]
    expected = [t for i in index for t in range(starts[i], ends[i])]
    np.testing.assert_array_equal(buf.token_index(index), expected)
    np.testing.assert_array_equal(
        buf["values"][:, buf.token_index(index)], buf.select(index)["values"]
    )


def test_token_index_scatters_micro_batch_results_back_in_place() -> None:
    buf = build()
    out = np.zeros(buf.n_tokens, dtype=np.int64)
    for index in buf.microbatch_indices(4, padded=False):
        out[buf.token_index(index)] = buf.select(index).response_ids
    np.testing.assert_array_equal(out, buf.response_ids)


def test_microbatches_cover_the_batch_within_the_padded_budget() -> None:
    rng = np.random.default_rng(0)
    buf = TrajectoryBuffer()
    for i in range(40):
        buf.append(
            rng.integers(0, 9, rng.integers(1, 5)),
            rng.integers(0, 9, rng.integers(0, 30)),
            group_id=i // 4,
        )
    seen = []
    micro = [buf.select(idx) for idx in buf.microbatch_indices(64)]
    for mb in micro:
        total = mb.prompt_lengths + mb.response_lengths
        assert len(mb) * total.max() <= 64 or len(mb) == 1
        seen.extend(mb.group_ids.tolist())
    assert sorted(seen) == sorted(buf.group_ids.tolist())
    assert sum(mb.n_tokens for mb in micro) == buf.n_tokens


@pytest.mark.parametrize("prompt_side", ["right", "left"])
def test_padded_microbatches_fit_the_layout_to_padded_builds(prompt_side: str) -> None:
    rng = np.random.default_rng(1)
    buf = TrajectoryBuffer()
    for i in range(40):
        # Long prompts with short responses and the reverse: the two layouts differ most.
        long_prompt = i % 2 == 0
        buf.append(
            rng.integers(0, 9, rng.integers(20, 30) if long_prompt else rng.integers(1, 3)),
            rng.integers(0, 9, rng.integers(0, 3) if long_prompt else rng.integers(20, 30)),
            group_id=i // 4,
        )
    micro = [buf.select(idx) for idx in buf.microbatch_indices(120, prompt_side=prompt_side)]
    for mb in micro:
        size = mb.to_padded(prompt_side=prompt_side)["input_ids"].size
        assert size <= 120 or len(mb) == 1
    assert sum(len(mb) for mb in micro) == 40


def test_setting_a_token_field_checks_its_length() -> None:
    buf = build()
    buf["advantages"] = np.ones(4, np.float32)
    assert "advantages" in buf
    with pytest.raises(ValueError, match=r"returns: expected last axis 4 \(n_tokens\)"):
        buf["returns"] = np.ones(3, np.float32)


def test_append_requires_the_same_fields_for_every_sequence() -> None:
    buf = TrajectoryBuffer()
    buf.append([1], [2], group_id=0, old_log_probs=np.zeros(1))
    with pytest.raises(ValueError, match=r"token_fields: expected \['old_log_probs'\]"):
        buf.append([1], [2], group_id=0)


def test_append_checks_field_length_against_response() -> None:
    with pytest.raises(ValueError, match=r"old_log_probs: expected last axis 2"):
        TrajectoryBuffer().append([1], [2, 3], group_id=0, old_log_probs=np.zeros(3))


def test_select_rejects_out_of_range_indices() -> None:
    with pytest.raises(ValueError, match="indices: expected values in"):
        build().select([3])


def test_from_packed_rejects_inconsistent_offsets() -> None:
    with pytest.raises(ValueError, match="offsets: expected non-decreasing offsets from 0 to 2"):
        TrajectoryBuffer.from_packed([1], [0, 1], [5, 6], [0, 1], group_ids=[0])


def test_unknown_field_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="no such token field"):
        build()["advantages"]


def test_from_packed_accepts_boolean_rewards_as_float32() -> None:
    buf = TrajectoryBuffer.from_packed([1], [0, 1], [2, 3], [0, 2], group_ids=[0], rewards=[True])
    assert buf.rewards.dtype == np.float32 and buf.rewards.tolist() == [1.0]


def test_offsets_from_lengths_are_the_running_sums_from_zero() -> None:
    np.testing.assert_array_equal(offsets_from_lengths([3, 0, 2]), [0, 3, 3, 5])
    assert offsets_from_lengths(np.zeros(0, np.int64)).tolist() == [0]
