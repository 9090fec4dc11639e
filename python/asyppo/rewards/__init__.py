"""Rewards: boxed-answer extraction, the math verifier, format and user rewards, a runner
that scores a batch under per-response time limits without ever raising on a failing reward, and
length-based shaping (DAPO's soft overlong punishment)."""

from __future__ import annotations

from asyppo.rewards.boxed import extract_boxed, normalize_answer
from asyppo.rewards.config import RewardConfig
from asyppo.rewards.runner import RewardOutput, RewardRunner, build_reward_fn
from asyppo.rewards.scoring import ResponseScorer
from asyppo.rewards.shaping import overlong_penalty
from asyppo.rewards.user import load_user_reward
from asyppo.rewards.verifiers import exact_correct, has_boxed_answer, math_correct

__all__ = [
    "ResponseScorer",
    "RewardConfig",
    "RewardOutput",
    "RewardRunner",
    "build_reward_fn",
    "exact_correct",
    "extract_boxed",
    "has_boxed_answer",
    "load_user_reward",
    "math_correct",
    "normalize_answer",
    "overlong_penalty",
]
