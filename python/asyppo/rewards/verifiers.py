"""Built-in reward components: the math verifier and the format check.

Both take one response and its reference answer (strings) and are pure functions; time limits
are enforced by `asyppo.rewards.runner`, never here.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from typing import Literal

from asyppo.rewards.boxed import extract_boxed, normalize_answer

_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
#: A number as written in running text: a sign, digits (thousands grouped by commas or not),
#: decimals, or a fraction ``a/b``.
_NUMBER_IN_TEXT = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")

#: Where the verifiers look when a response has no closed ``\\boxed{}`` (``reward.answer_fallback``).
AnswerFallback = Literal["last_number"] | None


def final_answer(response: str, fallback: AnswerFallback = None) -> str | None:
    """The answer ``response`` gives: the content of its last closed, non-empty ``\\boxed{}``;
    without one, with ``fallback="last_number"``, its last number (thousands commas dropped), else
    None. (``The answer is \\boxed{}.`` after a worked sum is a format slip, not an answer.)"""
    boxed = extract_boxed(response)
    if boxed is not None and boxed.strip():
        return boxed
    if fallback is None:
        return None
    numbers = _NUMBER_IN_TEXT.findall(response)
    return numbers[-1].replace(",", "") if numbers else None


def math_correct(response: str, answer: str, fallback: AnswerFallback = None) -> bool:
    """Whether the final answer of ``response`` (`final_answer`: its last ``\\boxed{}``, or the
    ``fallback``) equals ``answer`` mathematically.

    The boxed content and the reference are parsed by the ``math-verify`` library (Hugging Face,
    ``parse`` + ``verify``: symbolic equivalence, so ``0.5`` matches ``\\frac{1}{2}``); when either
    side does not parse, the answer is wrong. Fast paths skip sympy: equal normalised strings
    (`normalize_answer`) are right, and two plain decimals are compared as numbers. A
    response without a closed ``\\boxed{}`` is wrong unless ``fallback`` finds an answer (without
    one, as in the AsyPPO paper's verifier, arXiv 2510.01656, section 4.1). math-verify's own signal-based timeouts are switched off (they only
    work on the main thread); the caller bounds the time.
    """
    predicted = final_answer(response, fallback)
    if predicted is None:
        return False
    reference = extract_boxed(answer)
    reference = answer if reference is None else reference
    a, b = normalize_answer(predicted), normalize_answer(reference)
    if a == b:
        return True
    if _PLAIN_NUMBER.fullmatch(a) and _PLAIN_NUMBER.fullmatch(b):
        # Both plain decimals: comparing the numbers is exact and ~1000x cheaper than sympy.
        return Decimal(a) == Decimal(b)
    from math_verify import parse, verify  # heavy (sympy): imported only when needed

    # Its "timeout is disabled" warning is moot: the runner bounds the time from outside.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gold = parse(f"\\boxed{{{reference}}}", parsing_timeout=None)  # type: ignore[arg-type]
    pred = parse(f"\\boxed{{{predicted}}}", parsing_timeout=None)  # type: ignore[arg-type]
    return bool(gold and pred and verify(gold, pred, timeout_seconds=None))


def exact_correct(response: str, answer: str, fallback: AnswerFallback = None) -> bool:
    """Whether the final answer of ``response`` (`final_answer`) equals ``answer`` after
    `normalize_answer` (no symbolic comparison)."""
    predicted = final_answer(response, fallback)
    return predicted is not None and normalize_answer(predicted) == normalize_answer(answer)


def has_boxed_answer(response: str) -> bool:
    """Format check: the response ends its reasoning with a closed ``\\boxed{...}``."""
    return extract_boxed(response) is not None
