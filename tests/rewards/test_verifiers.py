"""Specification of the built-in correctness and format checks."""

from __future__ import annotations

import pytest
from asyppo.rewards import exact_correct, has_boxed_answer, math_correct
from asyppo.rewards.verifiers import final_answer


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


# -- reward.answer_fallback -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("The answer is 42.", "42"),
        ("so 1,234 apples in all", "1234"),
        ("x = -3/4", "-3/4"),
        ("first 1,2,3 then 7.5", "7.5"),
        ("\\boxed{7}, not 9", "7"),  # a box wins over any number
        ("3 + 4 = 7. The answer is \\boxed{}.", "7"),  # an empty box is no answer
        ("no number at all", None),
    ],
)
def test_the_last_number_fallback_reads_a_plain_text_answer(response: str, expected: str | None) -> None:
    assert final_answer(response, "last_number") == expected


def test_without_a_fallback_only_a_closed_box_is_an_answer() -> None:
    assert final_answer("The answer is 42.") is None
    assert final_answer("\\boxed{42") is None
    assert final_answer("so 42, \\boxed{ }") is None
    assert final_answer("so \\boxed{42}") == "42"


@pytest.mark.parametrize("verifier", [math_correct, exact_correct])
def test_verifiers_score_a_bare_number_only_with_the_fallback(verifier) -> None:  # type: ignore[no-untyped-def]
    assert verifier("It is 1,234.", "1234", "last_number")
    assert not verifier("It is 1,234.", "1234")
    assert not verifier("It is 1,233.", "1234", "last_number")
