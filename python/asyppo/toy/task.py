"""The toy task: procedurally generated two-operand addition with ``\\boxed{}`` answers.

A prompt reads ``"47+38="`` and the expected response is ``"\\boxed{85}"``; the answer field holds
``"85"`` so that the real math verifier (``asyppo.rewards``) scores it. Every ordered operand pair
is one prompt; pairs are dealt to the held-in train split and the held-out eval split with a seeded
permutation, so the two splits share no prompt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ArithmeticTask:
    """Settings of the addition task: operands are drawn from ``[low, high]`` (inclusive)."""

    low: int = 10
    high: int = 99
    n_eval: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError(
                f"ArithmeticTask: need 0 <= low <= high, got low={self.low}, high={self.high}"
            )
        n_pairs = (self.high - self.low + 1) ** 2
        if not 0 < self.n_eval < n_pairs:
            raise ValueError(f"ArithmeticTask: n_eval must be in (0, {n_pairs}), got {self.n_eval}")


def prompt_text(a: int, b: int) -> str:
    """The prompt for ``a + b``."""
    return f"{a}+{b}="


def response_text(a: int, b: int) -> str:
    """The ideal response for ``a + b`` (what the warm-start imitates)."""
    return f"\\boxed{{{a + b}}}"


def task_splits(task: ArithmeticTask) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Return ``(train_rows, eval_rows)``: JSONL-ready ``{"prompt", "answer"}`` dicts, disjoint."""
    operands = np.arange(task.low, task.high + 1)
    pairs = [(int(a), int(b)) for a in operands for b in operands]
    order = np.random.default_rng(task.seed).permutation(len(pairs))
    rows = [{"prompt": prompt_text(*pairs[i]), "answer": str(sum(pairs[i]))} for i in order]
    return rows[task.n_eval :], rows[: task.n_eval]


def parse_prompt(prompt: str) -> tuple[int, int]:
    """Inverse of `prompt_text`: the operands of ``"a+b="``."""
    left, _, right = prompt.rstrip("=").partition("+")
    return int(left), int(right)


def write_jsonl(rows: Iterable[dict[str, str]], path: Path) -> None:
    """Write ``rows`` as JSONL, one object per line (callers make it atomic)."""
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
