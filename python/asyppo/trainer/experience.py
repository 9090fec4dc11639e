"""From sampled responses and their scores to the step's ``engine.TrajectoryBuffer``
(docs/algorithm.md, steps 1-2), with the reward shaping and DAPO group filtering applied on the way."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from asyppo.engine import TrajectoryBuffer
from asyppo.generation import GenerationOutput
from asyppo.rewards import RewardConfig
from asyppo.rewards.shaping import overlong_penalty


def rollout_buffer(
    prompt_ids: Sequence[Sequence[int]], out: GenerationOutput, scores: np.ndarray, *, policy_version: int
) -> TrajectoryBuffer:
    """The buffer of ``out``'s N responses, each with its prompt's tokens.

    Group id = ``out.prompt_index`` (index of the prompt in ``prompt_ids``, this step's prompts);
    ``rewards`` = ``scores`` (float32 ``[N]``, the score trained on); every ``policy_versions``
    entry = ``policy_version`` (the optimizer step of the weights that sampled them).
    """
    prompts = TrajectoryBuffer()
    for i, ids in enumerate(prompt_ids):
        prompts.append(ids, [], group_id=i)
    # Each response's prompt, gathered packed: the buffer's select does it without a token loop.
    per_response = prompts.select(out.prompt_index)
    return TrajectoryBuffer.from_packed(
        per_response.prompt_ids,
        per_response.prompt_offsets,
        out.token_ids,
        out.offsets,
        group_ids=out.prompt_index,
        rewards=scores,
        policy_versions=np.full(len(out.prompt_index), policy_version, dtype=np.int64),
    )


def training_scores(scores: np.ndarray, finished: np.ndarray, truncated_score: float | None) -> np.ndarray:
    """float32 ``[N]``: the verifier's ``scores``, with every unfinished response (``finished``
    bool ``[N]`` False: no EOS within the budget) scored ``truncated_score`` instead.

    ``None`` keeps ``scores``. Only the training signal changes: the verifier's ``correct``
    verdict, hence the accuracy metrics, is not touched.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if truncated_score is None:
        return scores
    return np.where(finished, scores, np.float32(truncated_score)).astype(np.float32)


def shaped_scores(
    scores: np.ndarray, out: GenerationOutput, cfg: RewardConfig, *, max_new_tokens: int
) -> tuple[np.ndarray, dict[str, float]]:
    """The float32 ``[N]`` scores trained on, and the shaping's metrics.

    The verifier's ``scores`` (float ``[N]``, one per response of ``out``) with, in this order,
    ``cfg.truncated_score`` for the responses ``out`` cut without EOS (`training_scores`), then
    DAPO's soft overlong punishment of ``out.lengths`` against the budget ``max_new_tokens`` added
    when ``cfg.overlong_buffer`` is set (`asyppo.rewards.shaping.overlong_penalty`, arXiv
    2503.14476 §3.4 eq. 13). The metrics then hold ``reward/overlong_penalty``, the penalty's
    mean over the N responses (<= 0); with the buffer off they are empty.
    """
    shaped = training_scores(scores, out.finished, cfg.truncated_score)
    if cfg.overlong_buffer is None:
        return shaped, {}
    penalty = overlong_penalty(
        out.lengths, max_length=max_new_tokens, buffer=cfg.overlong_buffer, factor=cfg.overlong_penalty_factor
    )
    return shaped + penalty, {"reward/overlong_penalty": float(penalty.mean())}


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
