"""Specification of the built-in correctness and format checks."""

from __future__ import annotations

import pytest
from asyppo.rewards import exact_correct, has_boxed_answer, math_correct


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("\\boxed{85}", "85"),
        ("so \\boxed{0.5}", "\\frac{1}{2}"),
        ("\\boxed{x+1}", "1+x"),
        ("\\boxed{85.0}", "85"),
        ("\\boxed{\\text{yes}}", "Yes"),
        ("\\boxed{3}", "\\boxed{3}"),
    ],
)
def test_math_verifier_accepts_equivalent_answers(response: str, answer: str) -> None:
    assert math_correct(response, answer)


@pytest.mark.parametrize(
    ("response", "answer"),
    [("\\boxed{84}", "85"), ("\\boxed{x-1}", "x+1"), ("85", "85"), ("\\boxed{8", "8")],
)
def test_math_verifier_rejects_wrong_or_unboxed_answers(response: str, answer: str) -> None:
    assert not math_correct(response, answer)


def test_exact_verifier_does_not_do_algebra() -> None:
    assert exact_correct("\\boxed{ 1/2 }", "1/2")
    assert not exact_correct("\\boxed{0.5}", "\\frac{1}{2}")


def test_format_check_requires_a_closed_box() -> None:
    assert has_boxed_answer("\\boxed{anything}")
    assert not has_boxed_answer("\\boxed{unfinished")
