"""Specification of the step's rollout buffer and the reward shaping between the reward role and
the learner."""

from __future__ import annotations

import numpy as np
from asyppo.generation import GenerationOutput
from asyppo.trainer.experience import informative_groups, rollout_buffer, training_scores

PROMPTS = [[1, 2, 3], [4], [5, 6]]


def rollout() -> GenerationOutput:
    """Two responses to prompt 2, one each to prompts 0 and 1, in that (interleaved) order."""
    return GenerationOutput(
        token_ids=np.array([20, 21, 22, 23, 24, 25], dtype=np.int64),
        offsets=np.array([0, 2, 3, 5, 6], dtype=np.int64),
        prompt_index=np.array([2, 0, 2, 1], dtype=np.int64),
        finished=np.array([True, False, True, True]),
    )


def test_rollout_buffer_pairs_each_response_with_its_prompt() -> None:
    buf = rollout_buffer(PROMPTS, rollout(), np.zeros(4, np.float32), policy_version=0)
    expected = [PROMPTS[i] for i in (2, 0, 2, 1)]
    got = [buf.prompt_ids[a:b].tolist() for a, b in zip(buf.prompt_offsets[:-1], buf.prompt_offsets[1:])]
    assert got == expected
    np.testing.assert_array_equal(buf.response_ids, [20, 21, 22, 23, 24, 25])
    np.testing.assert_array_equal(buf.offsets, [0, 2, 3, 5, 6])


def test_rollout_buffer_groups_by_prompt_and_records_scores_and_version() -> None:
    scores = np.array([1.0, 0.0, 0.5, 1.0], np.float32)
    buf = rollout_buffer(PROMPTS, rollout(), scores, policy_version=7)
    np.testing.assert_array_equal(buf.group_ids, [2, 0, 2, 1])
    np.testing.assert_array_equal(buf.rewards, scores)
    np.testing.assert_array_equal(buf.policy_versions, [7, 7, 7, 7])


def test_truncated_responses_get_the_truncated_score_and_finished_ones_keep_theirs() -> None:
    out = training_scores(np.array([1.0, 1.0, 0.0, 0.5]), np.array([True, False, False, True]), -0.5)
    np.testing.assert_array_equal(out, np.array([1.0, -0.5, -0.5, 0.5], dtype=np.float32))
    assert out.dtype == np.float32


def test_truncated_score_none_leaves_scores_unchanged() -> None:
    out = training_scores(np.array([1.0, 1.0]), np.array([True, False]), None)
    np.testing.assert_array_equal(out, np.array([1.0, 1.0], dtype=np.float32))
    assert out.dtype == np.float32


def test_truncated_score_reaches_the_token_rewards() -> None:
    out = rollout()
    scores = training_scores(np.ones(4, np.float32), out.finished, 0.0)
    buf = rollout_buffer(PROMPTS, out, scores, policy_version=0)
    np.testing.assert_array_equal(buf.token_rewards(), np.array([0, 1, 0, 0, 1, 1], dtype=np.float32))


def test_informative_groups_drop_groups_whose_rewards_are_all_equal() -> None:
    group_ids = np.array([0, 0, 1, 1, 2])
    scores = np.array([1.0, 0.0, 1.0, 1.0, 0.0], np.float32)
    np.testing.assert_array_equal(informative_groups(group_ids, scores), [True, True, False, False, False])
