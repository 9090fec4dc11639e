"""`ResponseScorer`: the score of one response under a `RewardConfig` (no time limit here)."""

from __future__ import annotations

import functools
import math

from asyppo.rewards.config import RewardConfig
from asyppo.rewards.user import UserReward, load_user_reward
from asyppo.rewards.verifiers import exact_correct, has_boxed_answer, math_correct

_VERIFIERS = {"math": math_correct, "exact": exact_correct}


class UserRewardError(Exception):
    """The user reward raised, or returned something that is not a finite number, on a response
    whose verifier verdict is ``correct`` (kept so that the accuracy metric stays the verifier's)."""

    def __init__(self, message: str, *, correct: bool) -> None:
        super().__init__(message)
        self.correct = correct


def user_value(value: object, spec: str | None) -> float:
    """``value`` as a float score: an int, float or numpy/torch scalar, finite. A string (even
    ``"0.5"``), None, a container or NaN/inf is a ValueError naming ``spec`` and what came back."""
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise ValueError(f"user reward {spec!r} returned {type(value).__name__} {value!r:.40}, not a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(
            f"user reward {spec!r} returned {type(value).__name__} {value!r:.40}, not a number"
        ) from None
    if not math.isfinite(number):
        raise ValueError(f"user reward {spec!r} returned {number}")
    return number


class ResponseScorer:
    """Callable ``(response, answer) -> (score, correct)`` implementing `RewardConfig`'s formula.

    ``user`` is the loaded ``cfg.user_fn`` (the reward worker imports it under its own time
    limit); when None and ``cfg.user_fn`` is set, it is imported here. Raises whatever the
    verifier raises, and `UserRewardError` when the user reward raises or returns a value that
    is not a finite number; `asyppo.rewards.runner` turns both into a counted 0.
    """

    def __init__(self, cfg: RewardConfig, user: UserReward | None = None) -> None:
        self.cfg = cfg
        verifier = _VERIFIERS.get(cfg.verifier)
        self._verifier = None if verifier is None else functools.partial(verifier, fallback=cfg.answer_fallback)
        if user is None and cfg.user_fn is not None:
            user = load_user_reward(cfg.user_fn)
        self._user = user

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
            try:
                value = user_value(self._user(response, answer), cfg.user_fn)
            except Exception as exc:
                raise UserRewardError(f"{type(exc).__name__}: {exc}", correct=bool(correct)) from exc
            score += cfg.user_weight * value
        if self._verifier is None:
            correct = score > 0
        return score, bool(correct)
