"""Prompt data: datasets (JSONL / Parquet / HF datasets directory), prompt rendering with chat
templates, and a seeded, resumable sampler."""

from __future__ import annotations

from asyppo.data.chat import PAPER_SYSTEM_PROMPT, render_prompt
from asyppo.data.encode import (
    EncodedPrompts,
    PromptTooLongError,
    encode_prompts,
    max_token_chars,
    prompt_token_limit,
)
from asyppo.data.records import PromptRecord, load_prompts, make_record, split_train_eval
from asyppo.data.sampler import PromptSampler

__all__ = [
    "PAPER_SYSTEM_PROMPT",
    "EncodedPrompts",
    "PromptRecord",
    "PromptSampler",
    "PromptTooLongError",
    "encode_prompts",
    "load_prompts",
    "make_record",
    "max_token_chars",
    "prompt_token_limit",
    "render_prompt",
    "split_train_eval",
]
