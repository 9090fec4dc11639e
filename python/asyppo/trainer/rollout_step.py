"""Turn sampled prompts into a scored :class:`SequenceBatch` (DESIGN §3.1-3.2, DAPO filtering)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asyppo.rewards import RewardOutput
from asyppo.rollout import RolloutOutput
from asyppo.trainer.batch import SequenceBatch, offsets_from_lengths, segment_positions


@dataclass(frozen=True)
class ScoredBatch:
    """A rollout batch with its rewards: ``scores`` float32 ``[N]``, ``correct`` bool ``[N]``,
    ``finished`` bool ``[N]`` (ended with EOS)."""

    batch: SequenceBatch
    scores: np.ndarray
    correct: np.ndarray
    finished: np.ndarray

    def select(self, index: np.ndarray) -> ScoredBatch:
        return ScoredBatch(self.batch.select(index), self.scores[index], self.correct[index], self.finished[index])

    def token_rewards(self) -> np.ndarray:
        """float32 ``[T]``: each sequence's scalar reward on its last response token (sparse)."""
        rewards = np.zeros(self.batch.n_tokens, dtype=np.float32)
        lengths = self.batch.response_lengths
        ends = self.batch.offsets[1:][lengths > 0] - 1
        rewards[ends] = self.scores[lengths > 0]
        return rewards


def scored_batch(prompt_ids: list[list[int]], out: RolloutOutput, reward: RewardOutput) -> ScoredBatch:
    """Pair each response with its prompt's tokens; group id = index of the prompt in this step."""
    prompt_lengths = np.fromiter((len(p) for p in prompt_ids), dtype=np.int64, count=len(prompt_ids))
    flat = np.fromiter((t for p in prompt_ids for t in p), dtype=np.int64, count=int(prompt_lengths.sum()))
    positions, lengths = segment_positions(offsets_from_lengths(prompt_lengths), out.prompt_index)
    batch = SequenceBatch(
        prompt_ids=flat[positions],
        prompt_offsets=offsets_from_lengths(lengths),
        response_ids=out.token_ids,
        offsets=out.offsets,
        group_ids=out.prompt_index.astype(np.int64),
    )
    return ScoredBatch(
        batch, np.asarray(reward.scores, dtype=np.float32), np.asarray(reward.correct, dtype=bool), out.finished
    )


def score_truncated(scored: ScoredBatch, truncated_score: float | None) -> ScoredBatch:
    """``scored`` with every unfinished response (no EOS within the budget) scored ``truncated_score``.

    ``None`` returns ``scored`` unchanged. ``correct`` keeps the verifier's verdict, so accuracy
    metrics still say whether the answer was right; only the training signal changes.
    """
    if truncated_score is None:
        return scored
    scores = np.where(scored.finished, scored.scores, np.float32(truncated_score)).astype(np.float32)
    return ScoredBatch(scored.batch, scores, scored.correct, scored.finished)


def informative_groups(group_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """bool ``[N]``: True for responses of groups whose rewards are not all equal.

    DAPO's dynamic sampling (arXiv 2503.14476 §3.2) drops groups with all-equal rewards: their
    group-relative advantages are all zero, so they only dilute the batch.
    """
    n_groups = int(group_ids.max()) + 1 if len(group_ids) else 0
    high = np.full(n_groups, -np.inf)
    low = np.full(n_groups, np.inf)
    np.maximum.at(high, group_ids, scores)
    np.minimum.at(low, group_ids, scores)
    return (high > low)[group_ids]
