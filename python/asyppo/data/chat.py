"""Turning a prompt (text or chat messages) into the text the policy is conditioned on."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from asyppo.data.records import ChatMessages, Prompt

PAPER_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
"""The AsyPPO paper's system prompt (arXiv 2510.01656, appendix A.3)."""


def _messages(prompt: Prompt, system_prompt: str | None) -> ChatMessages:
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list):
        messages = [dict(m) for m in prompt]
    else:
        raise TypeError(
            f"render_prompt: prompt must be str or a list of messages, got {type(prompt).__name__}"
        )
    if system_prompt and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def render_prompt(
    tokenizer: PreTrainedTokenizerBase,
    prompt: Prompt,
    *,
    system_prompt: str | None = PAPER_SYSTEM_PROMPT,
    chat_template: bool = True,
) -> str:
    """The prompt text to tokenize (with ``add_special_tokens=False``).

    With a chat template: ``system_prompt`` (unless ``None``/empty, or the prompt already has a
    system message) then the prompt's messages, through ``tokenizer.apply_chat_template`` with
    the generation prompt appended. Without one (base models), or with ``chat_template=False``
    (a few-shot prompt written out in full): the message contents joined by a blank line, e.g.
    ``"<system>\\n\\n<prompt>"``.
    """
    messages = _messages(prompt, system_prompt)
    if chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert isinstance(text, str)
        return text
    return "\n\n".join(m["content"] for m in messages)
