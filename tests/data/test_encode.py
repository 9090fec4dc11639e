"""`encode_prompts`: the prompt-length limit (error or drop, with a count and the first row), the
character bound that refuses giant prompts untokenised, chunked tokenisation, and the default
limit from the actor's context."""

from __future__ import annotations

import logging

import pytest
from asyppo.data import (
    PromptRecord,
    PromptTooLongError,
    encode_prompts,
    max_token_chars,
    prompt_token_limit,
    render_prompt,
)
from asyppo.toy.tokenizer import build_toy_tokenizer


def records(*prompts: str) -> list[PromptRecord]:
    return [PromptRecord(i, p, "1", f"data.jsonl:{i + 1}") for i, p in enumerate(prompts)]


def test_ids_equal_tokenising_the_rendered_prompts_in_order() -> None:
    tokenizer = build_toy_tokenizer()
    rows = records("12+3=", "4+5=", "Be \\boxed{7}")
    out = encode_prompts(tokenizer, rows, system_prompt="S", max_prompt_tokens=64)
    for r in rows:
        text = render_prompt(tokenizer, r.prompt, system_prompt="S")
        assert out.token_ids[r.index] == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert out.records == rows and out.n_too_long == 0 and out.first_too_long is None


def test_tiny_chunks_give_the_same_ids() -> None:
    tokenizer = build_toy_tokenizer()
    rows = records(*(f"{i}+{i}=" for i in range(50)))
    whole = encode_prompts(tokenizer, rows, system_prompt=None, max_prompt_tokens=64)
    chunked = encode_prompts(tokenizer, rows, system_prompt=None, max_prompt_tokens=64, chunk_chars=7)
    assert chunked == whole


def test_an_over_long_prompt_is_an_error_with_the_count_and_the_first_row() -> None:
    rows = records("1+1=", "123456789=", "2+2=", "1234567890123=")
    with pytest.raises(PromptTooLongError) as info:
        encode_prompts(build_toy_tokenizer(), rows, system_prompt=None, max_prompt_tokens=8, what="data.train")
    message = str(info.value)
    assert "data.train: 2 of 4 prompts are longer than data.max_prompt_tokens=8" in message
    assert "the first is data.jsonl:2: 10 tokens" in message
    assert "data.long_prompts=drop" in message


def test_a_prompt_of_exactly_the_limit_is_kept() -> None:
    out = encode_prompts(build_toy_tokenizer(), records("12345678"), system_prompt=None, max_prompt_tokens=8)
    assert len(out.token_ids[0]) == 8


def test_drop_leaves_them_out_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    rows = records("1+1=", "123456789=", "2+2=")
    with caplog.at_level(logging.WARNING):
        out = encode_prompts(build_toy_tokenizer(), rows, system_prompt=None, max_prompt_tokens=8, long_prompts="drop")
    assert [r.index for r in out.records] == [0, 2] and sorted(out.token_ids) == [0, 2]
    assert out.n_too_long == 1 and out.first_too_long == "data.jsonl:2: 10 tokens"
    assert "1 of 3 prompts are longer than data.max_prompt_tokens=8" in caplog.text


def test_dropping_every_prompt_is_an_error() -> None:
    with pytest.raises(ValueError, match="every prompt would be dropped"):
        encode_prompts(build_toy_tokenizer(), records("123456789"), system_prompt=None, max_prompt_tokens=4,
                       long_prompts="drop")


def test_the_chat_template_counts_towards_the_limit() -> None:
    tokenizer = build_toy_tokenizer()
    tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    with pytest.raises(PromptTooLongError, match="12 tokens"):  # "<user>" + "1+1=" + ...
        encode_prompts(tokenizer, records("1+1=+2"), system_prompt=None, max_prompt_tokens=11)


def test_a_giant_prompt_is_refused_without_tokenising_it(monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = build_toy_tokenizer()
    limit_chars = 10 * max_token_chars(tokenizer)
    calls: list[int] = []
    original = type(tokenizer).__call__

    def counting(self, text, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(sum(map(len, text)))
        return original(self, text, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", counting)
    with pytest.raises(PromptTooLongError, match=rf"{limit_chars + 1} characters, more than 10 tokens can hold"):
        encode_prompts(tokenizer, records("1+1=", "7" * (limit_chars + 1)), system_prompt=None, max_prompt_tokens=10)
    assert calls == [4]  # only the short prompt reached the tokenizer


def test_max_token_chars_is_the_longest_vocabulary_entry() -> None:
    assert max_token_chars(build_toy_tokenizer()) == len("\\boxed")


def test_the_default_limit_is_the_context_minus_the_response_budget() -> None:
    assert prompt_token_limit(None, context_length=4096, max_new_tokens=1024) == 3072
    assert prompt_token_limit(100, context_length=4096, max_new_tokens=1024) == 100
    assert prompt_token_limit(100, context_length=None, max_new_tokens=1024) == 100


def test_limits_that_cannot_fit_the_context_are_refused() -> None:
    with pytest.raises(ValueError, match=r"data.max_prompt_tokens \(4000\) \+ rollout.max_new_tokens \(1024\) exceeds"):
        prompt_token_limit(4000, context_length=4096, max_new_tokens=1024)
    with pytest.raises(ValueError, match="leaves no room for a prompt"):
        prompt_token_limit(None, context_length=64, max_new_tokens=64)
    with pytest.raises(ValueError, match="set data.max_prompt_tokens"):
        prompt_token_limit(None, context_length=None, max_new_tokens=8)
