"""Specification of `extract_boxed` and `normalize_answer`."""

from __future__ import annotations

import pytest
from asyppo.rewards import extract_boxed, normalize_answer


def test_extracts_simple_box() -> None:
    assert extract_boxed("so the answer is \\boxed{42}.") == "42"


def test_handles_nested_braces() -> None:
    assert extract_boxed("\\boxed{\\frac{1}{\\sqrt{2}}}") == "\\frac{1}{\\sqrt{2}}"


def test_returns_the_last_box() -> None:
    assert extract_boxed("first \\boxed{1}, then \\boxed{2}") == "2"


def test_brace_less_form_takes_the_next_token() -> None:
    assert extract_boxed("answer: $\\boxed 7$") == "7"


def test_fbox_counts_as_a_box() -> None:
    assert extract_boxed("\\fbox{x+1}") == "x+1"


def test_unclosed_last_box_gives_none() -> None:
    assert extract_boxed("\\boxed{1} and then \\boxed{\\frac{2}{3") is None


def test_no_box_gives_none() -> None:
    assert extract_boxed("the answer is 42") is None


def test_boxed_prefix_of_a_longer_command_is_not_a_box() -> None:
    assert extract_boxed("\\boxedtext{3}") is None


def test_non_string_input_raises_type_error() -> None:
    with pytest.raises(TypeError, match="text must be str"):
        extract_boxed(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" 42. ", "42"),
        ("$x + 1$", "x+1"),
        ("\\text{Yes}", "yes"),
        ("{7}", "7"),
        ("\\boxed{5}", "5"),
    ],
)
def test_normalize_answer_canonicalises(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected
