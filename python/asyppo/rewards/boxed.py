"""Final-answer extraction from ``\\boxed{...}`` and string normalisation for exact matching."""

from __future__ import annotations

import re

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_BOX_START = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")


def _braced(text: str, open_at: int) -> str | None:
    """Content of the brace group opening at ``text[open_at] == "{"``; None if it never closes."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    return None


def extract_boxed(text: str) -> str | None:
    """The content of the *last* ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``.

    Nested braces are matched (``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``). The brace-less
    form ``\\boxed 5`` gives the next whitespace-delimited token (``$`` ends it too). Returns None
    when there is no box, or when the last box is never closed (a truncated response).
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_boxed: text must be str, got {type(text).__name__}")
    matches = list(_BOX_START.finditer(text))
    if not matches:
        return None
    after = matches[-1].end()
    rest = text[after:]
    stripped = rest.lstrip()
    if stripped.startswith("{"):
        return _braced(text, after + len(rest) - len(stripped))
    if rest[:1].isspace():
        token = re.match(r"[^\s$]+", stripped)
        return token.group(0) if token else None
    return None


def normalize_answer(answer: str) -> str:
    """Canonical string for exact matching: unboxed, ``\\text{}`` unwrapped, ``$``, whitespace,
    ``\\left``/``\\right``, a trailing period and surrounding braces removed, lower-cased."""
    boxed = extract_boxed(answer)
    s = boxed if boxed is not None else answer
    s = _TEXT_WRAPPER.sub(r"\1", s)
    s = s.replace("$", "").replace("\\left", "").replace("\\right", "").replace("\\!", "")
    s = "".join(s.split()).rstrip(".")
    while s.startswith("{") and s.endswith("}") and _braced(s, 0) == s[1:-1]:
        s = s[1:-1]
    return s.lower()
