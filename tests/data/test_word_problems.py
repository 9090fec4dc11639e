"""The arithmetic word problems (``builtin:word-problems-*``): right answers, disjoint splits, a
few-shot chat prompt in the format the verifier reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

from asyppo.data.word_problems import WordProblems, resolve_word_problems
from asyppo.rewards import math_correct


def solve(question: str) -> int:
    """An independent reading of each story's question."""
    numbers = [int(n) for n in re.findall(r"\d+", question)]
    if "buys" in question and "gives" in question:
        return numbers[0] + numbers[1] - numbers[2]
    if "buys" in question:
        return numbers[0] + numbers[1]
    if "gave" in question:
        return numbers[0] - numbers[1]
    if "boxes" in question:
        return numbers[0] * numbers[1]
    assert "equally" in question, question
    return numbers[0] // numbers[1]


def test_every_answer_is_the_stories_arithmetic() -> None:
    train, held_out = WordProblems(n_train=300, n_eval=50).splits()
    for row in train + held_out:
        assert row["answer"] == str(solve(row["prompt"][-1]["content"]))
        assert int(row["answer"]) >= 0


def test_splits_are_disjoint_and_the_worked_examples_are_apart_from_both() -> None:
    train, held_out = WordProblems(n_train=300, n_eval=50).splits()
    questions = [row["prompt"][-1]["content"] for row in train + held_out]
    assert len(set(questions)) == len(questions) == 350
    shots = train[0]["prompt"][:-1]
    assert all(row["prompt"][:-1] == shots for row in train + held_out)  # one shared few-shot chat
    assert [m["role"] for m in shots] == ["user", "assistant"] * 3
    assert not {m["content"] for m in shots[::2]} & set(questions)
    for question, worked in zip(shots[::2], shots[1::2]):
        assert math_correct(worked["content"], str(solve(question["content"])))  # the format it is scored on


def test_the_same_settings_give_the_same_problems_and_the_file_is_cached(tmp_path: Path) -> None:
    assert WordProblems(n_train=20, n_eval=5).splits() == WordProblems(n_train=20, n_eval=5).splits()
    assert WordProblems(seed=1, n_train=20, n_eval=5).splits() != WordProblems(n_train=20, n_eval=5).splits()
    path = resolve_word_problems("eval", tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == WordProblems().n_eval and resolve_word_problems("eval", tmp_path) == path
