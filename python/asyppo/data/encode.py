"""Prompts to token ids under a length limit, with bounded memory.

A prompt longer than the model can read is refused (or dropped) here, before generation: one
such prompt would otherwise be tokenised whole (a 50 MB prompt took memory past 13 GB) and then
sampled into a batch whose padded width it sets. Two guards keep memory bounded:

* **a character bound before tokenising.** No token of the vocabulary stands for more than
  ``L`` characters, ``L`` being the longest token of the vocabulary in characters (a byte-level BPE
  token's characters are bytes, so this holds for the decoded text too; a byte-fallback
  SentencePiece token covers one byte or more characters than its length). A prompt of more than
  ``max_prompt_tokens * L`` characters therefore has more than ``max_prompt_tokens`` tokens and is
  refused without being tokenised; it costs one ``len``.
* **chunks.** The rest is tokenised in calls of at most ``chunk_chars`` characters (one prompt
  longer than that is a call of its own), so the tokenizer's temporary encodings never hold the
  whole dataset at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from asyppo.data.chat import render_prompt
from asyppo.data.records import Prompt, PromptRecord

logger = logging.getLogger(__name__)

CHUNK_CHARS = 1 << 22
"""Characters per tokenizer call (4 Mi): large enough to amortise the call, small enough that the
fast tokenizer's per-call encodings (offsets, token strings) stay in the low hundreds of MB."""


class PromptTooLongError(ValueError):
    """Prompts exceed ``data.max_prompt_tokens`` and ``data.long_prompts`` is ``error``."""


@dataclass(frozen=True)
class EncodedPrompts:
    """The result of :func:`encode_prompts`.

    records: the kept records, in input order; token_ids: ``record.index -> ids`` for each of
    them; n_too_long: how many prompts exceeded the limit (dropped); first_too_long: the first of
    them in input order, as ``"<source>: <why>"`` (None when there is none).
    """

    records: list[PromptRecord]
    token_ids: dict[int, list[int]]
    n_too_long: int = 0
    first_too_long: str | None = None


def max_token_chars(tokenizer: PreTrainedTokenizerBase) -> int:
    """The longest token of ``tokenizer``'s vocabulary (added tokens included), in characters."""
    return max((len(token) for token in tokenizer.get_vocab()), default=1) or 1


def prompt_token_limit(configured: int | None, *, context_length: int | None, max_new_tokens: int) -> int:
    """``data.max_prompt_tokens``, or when it is None the actor's context minus the response budget.

    Raises ValueError when the default cannot be derived (the model config states no context
    length) or leaves no room for a prompt, and when an explicit limit plus ``max_new_tokens``
    exceeds a known context.
    """
    if configured is not None:
        if context_length is not None and configured + max_new_tokens > context_length:
            raise ValueError(
                f"data.max_prompt_tokens ({configured}) + rollout.max_new_tokens ({max_new_tokens}) "
                f"exceeds the actor's context length ({context_length})"
            )
        return configured
    if context_length is None:
        raise ValueError(
            "data.max_prompt_tokens: the actor's config.json states no context length "
            "(max_position_embeddings); set data.max_prompt_tokens"
        )
    limit = context_length - max_new_tokens
    if limit < 1:
        raise ValueError(
            f"rollout.max_new_tokens ({max_new_tokens}) leaves no room for a prompt in the actor's "
            f"context length ({context_length})"
        )
    return limit


def _content_chars(prompt: Prompt) -> int:
    return len(prompt) if isinstance(prompt, str) else sum(len(m["content"]) for m in prompt)


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[PromptRecord],
    *,
    system_prompt: str | None,
    max_prompt_tokens: int,
    chat_template: bool = True,
    long_prompts: str = "error",
    what: str = "prompts",
    chunk_chars: int = CHUNK_CHARS,
) -> EncodedPrompts:
    """Render (``render_prompt``, with the tokenizer's chat template unless ``chat_template`` is
    False) and tokenise (``add_special_tokens=False``) every record.

    A prompt with more than ``max_prompt_tokens`` tokens is too long: with ``long_prompts="error"``
    a :class:`PromptTooLongError` names ``what``, how many prompts are too long and the first
    (its source row and length); with ``"drop"`` they are left out and the same is logged as a
    warning. Dropping every record is a ValueError. See the module docstring for the bounds.
    """
    if long_prompts not in ("error", "drop"):
        raise ValueError(f"long_prompts must be 'error' or 'drop', got {long_prompts!r}")
    if max_prompt_tokens < 1:
        raise ValueError(f"max_prompt_tokens must be >= 1, got {max_prompt_tokens}")
    char_limit = max_prompt_tokens * max_token_chars(tokenizer)
    kept: dict[int, tuple[PromptRecord, list[int]]] = {}  # position -> (record, ids)
    too_long: dict[int, str] = {}  # position -> why
    pending: list[tuple[int, PromptRecord, str]] = []
    pending_chars = 0

    def flush() -> None:
        nonlocal pending_chars
        if not pending:
            return
        ids = tokenizer([text for _, _, text in pending], add_special_tokens=False)["input_ids"]
        for (position, record, _), tokens in zip(pending, ids):
            if len(tokens) > max_prompt_tokens:
                too_long[position] = f"{len(tokens)} tokens"
            else:
                kept[position] = (record, list(tokens))
        pending.clear()
        pending_chars = 0

    for position, record in enumerate(records):
        n_chars = _content_chars(record.prompt)
        text = ""
        if n_chars <= char_limit:
            text = render_prompt(tokenizer, record.prompt, system_prompt=system_prompt, chat_template=chat_template)
        n_chars = max(n_chars, len(text))
        if n_chars > char_limit:
            too_long[position] = f"{n_chars} characters, more than {max_prompt_tokens} tokens can hold"
            continue
        if pending and pending_chars + len(text) > chunk_chars:
            flush()
        pending.append((position, record, text))
        pending_chars += len(text)
    flush()

    first = f"{records[min(too_long)].source}: {too_long[min(too_long)]}" if too_long else None
    if too_long:
        summary = (
            f"{what}: {len(too_long)} of {len(records)} prompts are longer than "
            f"data.max_prompt_tokens={max_prompt_tokens}; the first is {first}"
        )
        if long_prompts == "error":
            raise PromptTooLongError(
                f"{summary}. Raise data.max_prompt_tokens (prompt plus rollout.max_new_tokens must fit "
                "the actor's context) or set data.long_prompts=drop to leave them out"
            )
        if len(too_long) == len(records):
            raise ValueError(f"{summary}: every prompt would be dropped")
        logger.warning("%s; dropped (data.long_prompts=drop)", summary)
    ordered = [kept[p] for p in sorted(kept)]
    return EncodedPrompts(
        records=[record for record, _ in ordered],
        token_ids={record.index: ids for record, ids in ordered},
        n_too_long=len(too_long),
        first_too_long=first,
    )
