"""Specification of `render_prompt`: chat template when present, plain fallback otherwise."""

from __future__ import annotations

from asyppo.data import PAPER_SYSTEM_PROMPT, render_prompt
from asyppo.toy.tokenizer import build_toy_tokenizer

TEMPLATE = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"


def templated_tokenizer():  # type: ignore[no-untyped-def]
    tokenizer = build_toy_tokenizer()
    tokenizer.chat_template = TEMPLATE
    return tokenizer


def test_plain_fallback_joins_system_and_prompt_with_a_blank_line() -> None:
    assert (
        render_prompt(build_toy_tokenizer(), "1+1=", system_prompt="Be brief.")
        == "Be brief.\n\n1+1="
    )


def test_plain_fallback_without_system_prompt_is_the_prompt() -> None:
    assert render_prompt(build_toy_tokenizer(), "1+1=", system_prompt=None) == "1+1="


def test_default_system_prompt_is_the_papers() -> None:
    assert render_prompt(build_toy_tokenizer(), "q").startswith(PAPER_SYSTEM_PROMPT)
    assert (
        PAPER_SYSTEM_PROMPT
        == "Please reason step by step, and put your final answer within \\boxed{}."
    )


def test_chat_template_is_applied_with_generation_prompt() -> None:
    text = render_prompt(templated_tokenizer(), "1+1=", system_prompt="S")
    assert text == "<system>S</s><user>1+1=</s><assistant>"


def test_the_chat_template_can_be_switched_off() -> None:
    text = render_prompt(templated_tokenizer(), "Q: 1+1\nA: 2\n\nQ: 2+2\nA:", system_prompt="S", chat_template=False)
    assert text == "S\n\nQ: 1+1\nA: 2\n\nQ: 2+2\nA:"


def test_existing_system_message_is_not_doubled() -> None:
    messages = [{"role": "system", "content": "mine"}, {"role": "user", "content": "q"}]
    assert (
        render_prompt(templated_tokenizer(), messages, system_prompt="S")
        == "<system>mine</s><user>q</s><assistant>"
    )
