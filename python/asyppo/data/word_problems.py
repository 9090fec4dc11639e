"""Arithmetic word problems for small pretrained chat models: ``builtin:word-problems-train`` /
``builtin:word-problems-eval``.

Each problem is one or two operations on small whole numbers told as a story ("Mia has 12
marbles. She buys 7 more, then gives 5 away. How many marbles does Mia have now?"); the answer is
the number. The prompt is a chat: three worked examples as earlier user / assistant turns, each
ending in ``\\boxed{answer}``, then the question, so that a small instruction-tuned model (e.g.
SmolLM2-135M-Instruct, ``configs/smollm2_arith.yaml``) sees the format it is scored on. Problems
are drawn from a seeded generator; train and held-out sets never share a question, and the
worked examples are drawn apart from both.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from asyppo.cache import materialise
from asyppo.data.records import ChatMessages

NAMES = ("Mia", "Leo", "Ava", "Noah", "Zoe", "Omar", "Ivy", "Sam", "Lena", "Raj", "Nina", "Tom")
ITEMS = ("apples", "marbles", "stickers", "books", "coins", "pencils", "cards", "shells")

#: A story: (rng, name, item) -> (question, worked solution, answer).
Story = Callable[[random.Random, str, str], tuple[str, str, int]]


def _buys(rng: random.Random, name: str, item: str) -> tuple[str, str, int]:
    a, b = rng.randint(2, 60), rng.randint(2, 40)
    return (f"{name} has {a} {item}. {name} buys {b} more. How many {item} does {name} have now?",
            f"{a} + {b} = {a + b}.", a + b)


def _gives(rng: random.Random, name: str, item: str) -> tuple[str, str, int]:
    b = rng.randint(2, 30)
    a = b + rng.randint(1, 50)
    return (f"{name} had {a} {item} and gave {b} of them to a friend. How many {item} are left?",
            f"{a} - {b} = {a - b}.", a - b)


def _boxes(rng: random.Random, name: str, item: str) -> tuple[str, str, int]:
    a, b = rng.randint(2, 12), rng.randint(2, 9)
    return (f"{name} has {b} boxes with {a} {item} in each box. How many {item} does {name} have?",
            f"{b} x {a} = {a * b}.", a * b)


def _shares(rng: random.Random, name: str, item: str) -> tuple[str, str, int]:
    each, friends = rng.randint(2, 12), rng.randint(2, 9)
    total = each * friends
    question = f"{name} shares {total} {item} equally among {friends} friends. How many {item} does each friend get?"
    return question, f"{total} / {friends} = {each}.", each


def _buys_then_gives(rng: random.Random, name: str, item: str) -> tuple[str, str, int]:
    a, b = rng.randint(5, 40), rng.randint(2, 30)
    c = rng.randint(1, a + b - 1)
    question = f"{name} has {a} {item}. {name} buys {b} more, then gives {c} away. How many {item} does {name} have now?"
    return question, f"{a} + {b} = {a + b}, and {a + b} - {c} = {a + b - c}.", a + b - c


STORIES: tuple[Story, ...] = (_buys, _gives, _boxes, _shares, _buys_then_gives)


@dataclass(frozen=True)
class WordProblems:
    """How the two splits are drawn (the defaults are what ``builtin:word-problems-*`` serve)."""

    seed: int = 2510
    n_train: int = 2000
    n_eval: int = 100
    shots: int = 3

    def splits(self) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        """(train rows, held-out rows): ``{"prompt": chat messages, "answer": "<number>"}``."""
        rng = random.Random(self.seed)
        seen: set[str] = set()
        examples = [self._draw(rng, seen) for _ in range(self.shots)]
        shots: ChatMessages = []
        for question, solution, answer in examples:
            shots += [{"role": "user", "content": question},
                      {"role": "assistant", "content": f"{solution} The answer is \\boxed{{{answer}}}."}]
        rows = []
        for _ in range(self.n_train + self.n_eval):
            question, _, answer = self._draw(rng, seen)
            rows.append({"prompt": [*shots, {"role": "user", "content": question}], "answer": str(answer)})
        return rows[: self.n_train], rows[self.n_train :]

    @staticmethod
    def _draw(rng: random.Random, seen: set[str]) -> tuple[str, str, int]:
        """A problem whose question has not been drawn before."""
        while True:
            question, solution, answer = rng.choice(STORIES)(rng, rng.choice(NAMES), rng.choice(ITEMS))
            if question not in seen:
                seen.add(question)
                return question, solution, answer


def resolve_word_problems(split: str, cache_dir: str | Path, problems: WordProblems = WordProblems()) -> Path:
    """The cached JSONL file of ``split`` ("train" or "eval"), written on first use."""
    if split not in ("train", "eval"):
        raise ValueError(f"word problems: unknown split {split!r} (train, eval)")
    key = "-".join(str(v) for v in asdict(problems).values())
    target = Path(cache_dir).expanduser() / f"word-problems-{key}" / f"{split}.jsonl"

    def write(path: Path) -> None:
        rows = problems.splits()[0 if split == "train" else 1]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")

    return materialise(target, write)
