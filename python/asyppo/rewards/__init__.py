"""Rewards: boxed-answer extraction, the math verifier, format and user rewards, a runner
that scores a batch in a worker process under per-response time limits (a failing response
scores 0 and is counted; a reward that cannot score at all raises), and length-based shaping
(DAPO's soft overlong punishment)."""

from __future__ import annotations

from asyppo.rewards.boxed import extract_boxed, normalize_answer
from asyppo.rewards.config import RewardConfig
from asyppo.rewards.runner import RewardError, RewardOutput, RewardRunner, build_reward_fn
from asyppo.rewards.scoring import ResponseScorer, UserRewardError, user_value
from asyppo.rewards.shaping import overlong_penalty
from asyppo.rewards.user import check_user_reward_spec, load_user_reward
from asyppo.rewards.verifiers import exact_correct, has_boxed_answer, math_correct

__all__ = [
    "ResponseScorer",
    "RewardConfig",
    "RewardError",
    "RewardOutput",
    "RewardRunner",
    "UserRewardError",
    "build_reward_fn",
    "check_user_reward_spec",
    "exact_correct",
    "extract_boxed",
    "has_boxed_answer",
    "load_user_reward",
    "math_correct",
    "normalize_answer",
    "overlong_penalty",
    "user_value",
]
