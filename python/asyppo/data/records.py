"""Prompt datasets: loading rows from JSONL, Parquet or a local HF ``datasets`` directory into
validated `PromptRecord`s, and the held-out split."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ChatMessages = list[dict[str, str]]
Prompt = str | ChatMessages

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class PromptRecord:
    """One prompt: ``index`` is its 0-based row in the source; ``prompt`` is text or a list of chat
    messages (``{"role", "content"}``); ``answer`` the reference answer as text; ``source``
    names where it came from (``file:line`` for JSONL, ``file row i`` otherwise)."""

    index: int
    prompt: Prompt
    answer: str
    source: str


def _check_prompt(value: Any, where: str, key: str) -> Prompt:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{where}: field {key!r} is an empty string")
        return value
    if isinstance(value, (list, tuple)) and value:
        messages: ChatMessages = []
        for j, message in enumerate(value):
            if (
                not isinstance(message, Mapping)
                or not isinstance(message.get("role"), str)
                or not isinstance(message.get("content"), str)
            ):
                raise ValueError(  # noqa: TRY004 (bad data, reported like every malformed row)
                    f"{where}: field {key!r} message {j} must be an object with string 'role' and "
                    f"'content', got {message!r:.80}"
                )
            messages.append({"role": message["role"], "content": message["content"]})
        return messages
    raise ValueError(
        f"{where}: field {key!r} must be a non-empty string or a non-empty list of chat messages, "
        f"got {type(value).__name__}"
    )


def _check_answer(value: Any, where: str, key: str) -> str:
    # Numeric answers (e.g. GSM8K-style ints) are common in datasets; bool is almost surely a bug.
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(
        f"{where}: field {key!r} must be a string or a number, got {type(value).__name__}"
    )


def make_record(
    row: Any, *, index: int, where: str, prompt_key: str, answer_key: str
) -> PromptRecord:
    """Validate one raw row (a mapping) into a `PromptRecord`; ValueError names ``where`` and the
    missing or bad field."""
    if not isinstance(row, Mapping):
        raise ValueError(  # noqa: TRY004 (bad data, reported like every malformed row)
            f"{where}: expected an object with fields {prompt_key!r} and {answer_key!r}, got {type(row).__name__}"
        )
    for key in (prompt_key, answer_key):
        if key not in row:
            present = ", ".join(map(repr, row)) or "none"
            raise ValueError(f"{where}: missing field {key!r} (fields present: {present})")
        if row[key] is None:
            raise ValueError(f"{where}: field {key!r} is null")
    return PromptRecord(
        index=index,
        prompt=_check_prompt(row[prompt_key], where, prompt_key),
        answer=_check_answer(row[answer_key], where, answer_key),
        source=where,
    )


def _starts_with_array(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"[")


def _decode(data: bytes, where: str, *, line_of: bool) -> str:
    """``data`` as UTF-8; a ValueError naming ``where`` (and, with ``line_of``, the line and
    column of the bad byte within ``data``) when it is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        at = f"{where}:{line}" if line_of else where
        raise ValueError(
            f"{at}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); "
            "prompt files must be UTF-8 text"
        ) from None


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            where = f"{path}:{line_no}"
            line = _decode(raw, where, line_of=False)
            if not line.strip():
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{where}: invalid JSON ({exc.msg} at column {exc.colno})"
                ) from None


def _json_array_rows(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        rows = json.loads(_decode(path.read_bytes(), str(path), line_of=True))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})"
        ) from None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON array of rows, got {type(rows).__name__}")  # noqa: TRY004
    return _table_rows(rows, str(path))


def _table_rows(rows: Iterable[Any], name: str) -> Iterator[tuple[str, Any]]:
    for i, row in enumerate(rows):
        yield f"{name} row {i}", row


def _parquet_rows(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    return _table_rows(pq.read_table(path).to_pylist(), str(path))


def _datasets_rows(path: Path) -> Iterator[tuple[str, Any]]:
    from datasets import Dataset, DatasetDict, load_from_disk

    loaded = load_from_disk(str(path))
    if isinstance(loaded, DatasetDict):
        if len(loaded) != 1:
            splits = ", ".join(sorted(loaded))
            raise ValueError(
                f"{path}: a DatasetDict with splits {splits}; point at one split's directory "
                f"(e.g. {path / min(loaded)})"
            )
        loaded = next(iter(loaded.values()))
    assert isinstance(loaded, Dataset)
    return _table_rows(loaded, str(path))


def load_prompts(
    path: str | Path, *, prompt_key: str = "prompt", answer_key: str = "answer"
) -> list[PromptRecord]:
    """Load every row of ``path`` as a `PromptRecord`.

    ``path`` is a JSONL file (``.jsonl``/``.ndjson``/``.json``, one object per line, blank lines
    skipped), a ``.json`` file holding one array of objects, a Parquet file (``.parquet``/``.pq``) or a directory written by
    ``datasets.Dataset.save_to_disk``. Raises FileNotFoundError for a missing path and ValueError
    for an unknown format or a malformed row, naming the file and line (JSONL) or row (0-based).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"prompt dataset {str(path)!r} does not exist")
    if path.is_dir():
        rows = _datasets_rows(path)
    elif path.suffix == ".json" and _starts_with_array(path):
        rows = _json_array_rows(path)
    elif path.suffix in JSONL_SUFFIXES:
        rows = _jsonl_rows(path)
    elif path.suffix in PARQUET_SUFFIXES:
        rows = _parquet_rows(path)
    else:
        raise ValueError(
            f"prompt dataset {str(path)!r}: unknown format {path.suffix!r}; expected one of "
            f"{', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)} or a datasets directory"
        )
    return [
        make_record(row, index=i, where=where, prompt_key=prompt_key, answer_key=answer_key)
        for i, (where, row) in enumerate(rows)
    ]


def split_train_eval(
    records: list[PromptRecord], *, eval_size: float, seed: int
) -> tuple[list[PromptRecord], list[PromptRecord]]:
    """Disjoint ``(train, eval)``: a seeded random ``eval_size`` records (a count, or a fraction
    in (0, 1)) are held out; both splits keep the input order."""
    n = len(records)
    if isinstance(eval_size, float):
        if not 0.0 < eval_size < 1.0:
            raise ValueError(
                f"split_train_eval: fractional eval_size must be in (0, 1), got {eval_size}"
            )
        n_eval = max(1, round(eval_size * n))
    elif isinstance(eval_size, int) and not isinstance(eval_size, bool):
        n_eval = eval_size
    else:
        raise TypeError(
            f"split_train_eval: eval_size must be int or float, got {type(eval_size).__name__}"
        )
    if not 0 < n_eval < n:
        raise ValueError(
            f"split_train_eval: eval_size={eval_size} leaves no train or no eval rows out of {n}"
        )
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng(seed).permutation(n)[:n_eval]] = True
    return [r for r, h in zip(records, held) if not h], [r for r, h in zip(records, held) if h]
