"""`ResponseScorer`: the score of one response under a `RewardConfig` (no time limit here)."""

from __future__ import annotations

import math

from asyppo.rewards.config import RewardConfig
from asyppo.rewards.user import load_user_reward
from asyppo.rewards.verifiers import exact_correct, has_boxed_answer, math_correct

_VERIFIERS = {"math": math_correct, "exact": exact_correct}


class ResponseScorer:
    """Callable ``(response, answer) -> (score, correct)`` implementing `RewardConfig`'s formula.

    Raises whatever a reward component raises, and ValueError when the user reward returns a
    value that is not a finite number; `asyppo.rewards.runner` turns both into a counted 0.
    """

    def __init__(self, cfg: RewardConfig) -> None:
        self.cfg = cfg
        self._verifier = _VERIFIERS.get(cfg.verifier)
        self._user = load_user_reward(cfg.user_fn) if cfg.user_fn is not None else None

    def __call__(self, response: str, answer: str) -> tuple[float, bool]:
        cfg = self.cfg
        score = 0.0
        correct = False
        if self._verifier is not None:
            correct = self._verifier(response, answer)
            score += cfg.correct_weight * correct
        if cfg.format_reward:
            score += cfg.format_reward * has_boxed_answer(response)
        if self._user is not None:
            value = self._user(response, answer)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"user reward {cfg.user_fn!r} returned {type(value).__name__}, not a number"
                ) from None
            if not math.isfinite(value):
                raise ValueError(f"user reward {cfg.user_fn!r} returned {value}")
            score += cfg.user_weight * value
        if self._verifier is None:
            correct = score > 0
        return score, bool(correct)
