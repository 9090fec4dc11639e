"""The embedded default: a tiny tokenizer and Qwen3-style models built in code, a procedural
addition task with ``\\boxed{}`` answers, and a supervised warm-start, served as ``builtin:``
assets (see `resolve_builtin`) so that ``python -m asyppo train`` needs no download."""

from __future__ import annotations

from asyppo.toy.builtin import (
    BUILTIN_NAMES,
    DEFAULT_TOY,
    ToySettings,
    resolve_builtin,
)
from asyppo.toy.model import ACTOR_SIZE, CRITIC_SIZE, ToyModelSize, build_toy_model, toy_config
from asyppo.toy.rl_settings import TOY_RL_SETTINGS
from asyppo.toy.task import ArithmeticTask, task_splits
from asyppo.toy.tokenizer import build_toy_tokenizer
from asyppo.toy.warmstart import WarmStartSettings, greedy_accuracy, warm_start

__all__ = [
    "ACTOR_SIZE",
    "BUILTIN_NAMES",
    "CRITIC_SIZE",
    "DEFAULT_TOY",
    "TOY_RL_SETTINGS",
    "ArithmeticTask",
    "ToyModelSize",
    "ToySettings",
    "WarmStartSettings",
    "build_toy_model",
    "build_toy_tokenizer",
    "greedy_accuracy",
    "resolve_builtin",
    "task_splits",
    "toy_config",
    "warm_start",
]
