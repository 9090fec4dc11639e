"""Supervised warm-start of the toy actor, so RL starts from a policy that is partly right.

Objective: token-level cross-entropy on the response tokens of ``prompt + "\\boxed{a+b}" + <eos>``
(prompt tokens are not scored), AdamW with a linear warm-up to a constant learning rate. Every ``eval_every`` steps the greedy
accuracy on a fixed probe set of *held-in* prompts is measured and training stops as soon as it
reaches ``target_accuracy`` (or after ``max_steps``): the held-out split is never looked at, and
stopping on a step count (never on wall time) keeps the result a pure function of the settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from asyppo.toy.task import parse_prompt, response_text


@dataclass(frozen=True)
class WarmStartSettings:
    """Budget and stopping rule of the supervised warm-start."""

    max_steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 50
    target_accuracy: float = 0.35
    eval_every: int = 10
    n_probe: int = 256
    seed: int = 0


@dataclass(frozen=True)
class WarmStartReport:
    steps: int
    probe_accuracy: float
    final_loss: float


def _sum_response(prompt: str) -> str:
    return response_text(*parse_prompt(prompt))


def _encode_examples(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    respond: Callable[[str], str] = _sum_response,
) -> list[tuple[list[int], list[int]]]:
    """``(prompt_ids, response_ids + [eos])`` of every prompt's ideal completion ``respond(p)``."""
    responses = [respond(p) for p in prompts]
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(responses, add_special_tokens=False)["input_ids"]
    return [(p, [*r, tokenizer.eos_token_id]) for p, r in zip(prompt_ids, response_ids)]


def _batch(
    examples: Sequence[tuple[list[int], list[int]]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` ([B, L] int64; labels are
    -100 on prompt and padding positions)."""
    width = max(len(p) + len(r) for p, r in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (p, r) in enumerate(examples):
        ids[i, : len(p) + len(r)] = torch.tensor(p + r)
        labels[i, len(p) : len(p) + len(r)] = torch.tensor(r)
        mask[i, : len(p) + len(r)] = 1
    return ids, mask, labels


@torch.no_grad()
def greedy_accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    batch_size: int = 256,
    max_new_tokens: int = 8,
    expected: Sequence[str] | None = None,
) -> float:
    """Fraction of ``prompts`` whose greedy completion is exactly ``\\boxed{answer}`` (or
    ``expected[i]`` where given, e.g. a multi-step response) then EOS."""
    if expected is None:
        expected = [f"\\boxed{{{a}}}" for a in answers]
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        enc = tokenizer(chunk, return_tensors="pt", padding=True, padding_side="left")
        out = model.generate(  # type: ignore[operator]
            **enc,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        texts = tokenizer.batch_decode(
            out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True
        )
        correct += sum(t == e for t, e in zip(texts, expected[start : start + batch_size]))
    model.train(was_training)
    return correct / max(len(prompts), 1)


def warm_start(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_prompts: Sequence[str],
    train_answers: Sequence[str],
    settings: WarmStartSettings,
    *,
    respond: Callable[[str], str] = _sum_response,
    max_new_tokens: int = 8,
) -> WarmStartReport:
    """Train ``model`` in place on held-in prompts until the probe accuracy reaches the target.

    ``respond(prompt)`` is the ideal response imitated and probed (default: the sums task's
    ``\\boxed{a+b}``); ``max_new_tokens`` the probe's generation budget."""
    if len(train_prompts) != len(train_answers):
        raise ValueError("warm_start: train_prompts and train_answers differ in length")
    if settings.n_probe > len(train_prompts):
        raise ValueError(
            f"warm_start: n_probe={settings.n_probe} exceeds {len(train_prompts)} prompts"
        )
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    probe = rng.choice(len(train_prompts), size=settings.n_probe, replace=False)
    probe_prompts = [train_prompts[i] for i in probe]
    probe_answers = [train_answers[i] for i in probe]
    probe_expected = [respond(p) for p in probe_prompts]
    examples = _encode_examples(tokenizer, train_prompts, respond)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.0)
    warmup = max(settings.warmup_steps, 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    model.train()
    accuracy, loss_value, step = 0.0, float("nan"), 0
    while step < settings.max_steps:
        picks = rng.integers(0, len(train_prompts), size=settings.batch_size)
        ids, mask, labels = _batch([examples[i] for i in picks], tokenizer.pad_token_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        loss_value = float(loss.detach())
        step += 1
        if step % settings.eval_every == 0:
            accuracy = greedy_accuracy(
                model, tokenizer, probe_prompts, probe_answers,
                max_new_tokens=max_new_tokens, expected=probe_expected,
            )
            if accuracy >= settings.target_accuracy:
                break
    model.eval()
    return WarmStartReport(steps=step, probe_accuracy=accuracy, final_loss=loss_value)
