"""Specification of reward shaping between the reward role and the learner."""

from __future__ import annotations

import numpy as np
from asyppo.trainer.batch import SequenceBatch
from asyppo.trainer.rollout_step import ScoredBatch, score_truncated


def scored(scores: list[float], finished: list[bool]) -> ScoredBatch:
    n = len(scores)
    batch = SequenceBatch(
        prompt_ids=np.ones(n, dtype=np.int64),
        prompt_offsets=np.arange(n + 1, dtype=np.int64),
        response_ids=np.full(2 * n, 5, dtype=np.int64),
        offsets=np.arange(0, 2 * n + 1, 2, dtype=np.int64),
        group_ids=np.zeros(n, dtype=np.int64),
    )
    return ScoredBatch(batch, np.asarray(scores, dtype=np.float32), np.asarray(scores, dtype=float) > 0,
                       np.asarray(finished, dtype=bool))


def test_truncated_responses_get_the_truncated_score_and_finished_ones_keep_theirs() -> None:
    out = score_truncated(scored([1.0, 1.0, 0.0, 0.5], [True, False, False, True]), -0.5)
    np.testing.assert_array_equal(out.scores, np.array([1.0, -0.5, -0.5, 0.5], dtype=np.float32))
    assert out.scores.dtype == np.float32


def test_truncated_score_keeps_the_verifier_verdict_for_accuracy() -> None:
    out = score_truncated(scored([1.0, 1.0], [True, False]), 0.0)
    np.testing.assert_array_equal(out.correct, [True, True])


def test_truncated_score_none_leaves_scores_unchanged() -> None:
    before = scored([1.0, 1.0], [True, False])
    assert score_truncated(before, None) is before


def test_truncated_score_reaches_the_token_rewards() -> None:
    out = score_truncated(scored([1.0, 1.0], [True, False]), 0.0)
    np.testing.assert_array_equal(out.token_rewards(), np.array([0, 1, 0, 0], dtype=np.float32))
