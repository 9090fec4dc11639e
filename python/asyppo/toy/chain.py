"""The chain task: three-operand addition written out in two steps, scored on the final answer.

A prompt reads ``"17+28+6="`` and the ideal response ``"45+6=\\boxed{51}"``: first the partial
sum of the first two operands, then the second addition, boxed. The answer field holds only the
final sum (``"51"``), so the real math verifier (``asyppo.rewards``, which reads the last
``\\boxed{}``) scores the response on its final answer alone. Unlike the one-step sums of
`asyppo.toy.task` (5-6 answer tokens), a response is 8-11 tokens and its *intermediate* tokens
decide the outcome: a wrong partial sum makes the right final answer unlikely, which is where a
per-token value (GAE on a critic) can assign credit that a per-response advantage (GRPO) cannot.

Every character is printable ASCII and ``\\boxed`` is one token, so the toy tokenizer
(`asyppo.toy.tokenizer`) covers the alphabet unchanged. Operand triples are drawn without
replacement by a seeded generator: ``n_eval`` held-out prompts, then ``n_train`` train prompts,
disjoint by construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_PROMPT = re.compile(r"^(\d+)\+(\d+)\+(\d+)=$")


@dataclass(frozen=True)
class ChainTask:
    """Settings of the chain task: operands are drawn from ``[low, high]`` (inclusive)."""

    # Operands in [1, 30] (27,000 triples): with [10, 99] the toy actor's warm-start was still at
    # 0 % exact match after 100 steps (61 s on the loaded 2-core machine); with [1, 30] it reached
    # 49 % in 300 steps (140 s).
    low: int = 1
    high: int = 30
    n_train: int = 16384
    n_eval: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError(f"ChainTask: need 0 <= low <= high, got low={self.low}, high={self.high}")
        n_triples = (self.high - self.low + 1) ** 3
        if self.n_train < 1 or self.n_eval < 1 or self.n_train + self.n_eval > n_triples:
            raise ValueError(
                f"ChainTask: need n_train >= 1, n_eval >= 1 and n_train + n_eval <= {n_triples} "
                f"(operand triples in [{self.low}, {self.high}]), got n_train={self.n_train}, "
                f"n_eval={self.n_eval}"
            )


def prompt_text(a: int, b: int, c: int) -> str:
    """The prompt for ``a + b + c``."""
    return f"{a}+{b}+{c}="


def response_text(a: int, b: int, c: int) -> str:
    """The ideal two-step response for ``a + b + c`` (what the warm-start imitates)."""
    return f"{a + b}+{c}=\\boxed{{{a + b + c}}}"


def parse_prompt(prompt: str) -> tuple[int, int, int]:
    """Inverse of `prompt_text`. ValueError for a prompt that is not ``"a+b+c="``."""
    match = _PROMPT.match(prompt)
    if match is None:
        raise ValueError(f"chain task: {prompt!r} is not a prompt of the form 'a+b+c='")
    a, b, c = (int(x) for x in match.groups())
    return a, b, c


def ideal_response(prompt: str) -> str:
    """`response_text` of a prompt string."""
    return response_text(*parse_prompt(prompt))


def chain_splits(task: ChainTask) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Return ``(train_rows, eval_rows)``: JSONL-ready ``{"prompt", "answer"}`` dicts, disjoint."""
    width = task.high - task.low + 1
    picks = np.random.default_rng(task.seed).choice(width**3, size=task.n_eval + task.n_train, replace=False)
    rows = []
    for index in picks.tolist():
        a, b, c = (task.low + index // width**2, task.low + index // width % width, task.low + index % width)
        rows.append({"prompt": prompt_text(a, b, c), "answer": str(a + b + c)})
    return rows[task.n_eval :], rows[: task.n_eval]
