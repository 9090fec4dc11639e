"""Held-out evaluation through the rollout and reward roles: greedy accuracy, avg@k and pass@k,
and a few sample responses to read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from asyppo.engine import offsets_from_lengths
from asyppo.generation import GenerationOutput, SamplingParams
from asyppo.pass_at_k import avg_at_k, pass_at_k
from asyppo.rewards import RewardOutput
from asyppo.runtime import RoleHandle


@dataclass(frozen=True)
class EvalResult:
    """``metrics``: ``eval/accuracy``, ``eval/response_length``, ``eval/truncated`` (the fraction
    of greedy responses cut at ``max_new_tokens`` before EOS or a stop string), ``eval/answered``
    when the verifier is on, and with ``k > 1`` ``eval/avg@k`` and ``eval/pass@k``. ``samples``:
    the first greedy responses as ``{"prompt", "response", "answer", "score", "correct"}`` rows.
    ``warning``: set when the numbers mislead (answers cut short, or no answer the verifier can
    read)."""

    metrics: dict[str, float]
    samples: list[dict[str, str | float | bool]] = field(default_factory=list)
    warning: str | None = None


def evaluate(
    rollout: RoleHandle,
    reward: RoleHandle,
    prompt_ids: list[list[int]],
    answers: list[str],
    *,
    max_new_tokens: int,
    k: int = 1,
    temperature: float = 1.0,
    samples: int = 0,
    stop: Sequence[str] = (),
) -> EvalResult:
    """Greedy accuracy (one sample per prompt); with ``k > 1`` also avg@k and pass@k over k samples
    per prompt at ``temperature`` (unbiased pass@k estimator, `asyppo.pass_at_k`); the first
    ``samples`` greedy responses decoded for reading. Responses end at EOS, at any of the ``stop``
    strings (``rollout.stop``, as in training) or after ``max_new_tokens``."""
    if not prompt_ids:
        return EvalResult({})
    greedy = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, stop=tuple(stop))
    out = rollout.call("generate", prompt_ids, greedy).result()
    scored = reward.call("score", out.token_ids, out.offsets, answers).result()
    truncated = float(1.0 - np.mean(out.finished))
    metrics = {
        "eval/accuracy": float(np.mean(scored.correct)),
        "eval/response_length": float(np.mean(out.lengths)),
        "eval/truncated": truncated,
    }
    if scored.answered is not None:
        metrics["eval/answered"] = float(np.mean(scored.answered))
    warning = scored.unanswered_warning("eval")
    if truncated > 0.5:
        warning = (
            f"eval: {truncated:.0%} of the greedy responses hit max_new_tokens={max_new_tokens} before "
            "EOS, so their answers are cut short; raise the budget (rollout.max_new_tokens, or "
            "--max-new-tokens for asyppo eval)"
        )
    if k > 1:
        sampling = SamplingParams(
            temperature=temperature, max_new_tokens=max_new_tokens, n=k, stop=tuple(stop)
        )
        sampled = rollout.call("generate", prompt_ids, sampling).result()
        repeated = [answers[i] for i in sampled.prompt_index]
        correct = np.asarray(reward.call("score", sampled.token_ids, sampled.offsets, repeated).result().correct)
        table = correct.reshape(len(prompt_ids), k)
        metrics[f"eval/avg@{k}"] = float(avg_at_k(table))
        metrics[f"eval/pass@{k}"] = float(np.mean([pass_at_k(k, int(c), k) for c in table.sum(axis=1)]))
    rows = _sample_rows(reward, prompt_ids, answers, out, scored, min(samples, len(prompt_ids)))
    return EvalResult(metrics, rows, warning)


def _sample_rows(
    reward: RoleHandle,
    prompt_ids: list[list[int]],
    answers: list[str],
    out: GenerationOutput,
    scored: RewardOutput,
    n: int,
) -> list[dict[str, str | float | bool]]:
    """The first ``n`` prompts with their greedy response, decoded by the reward role's tokenizer."""
    if n == 0:
        return []
    prompts = [np.asarray(p, dtype=np.int64) for p in prompt_ids[:n]]
    lengths = np.array([len(p) for p in prompts], dtype=np.int64)
    prompt_text = reward.call("decode", np.concatenate(prompts), offsets_from_lengths(lengths)).result()
    end = int(out.offsets[n])
    response_text = reward.call("decode", out.token_ids[:end], out.offsets[: n + 1]).result()
    return [
        {"prompt": prompt_text[i], "response": response_text[i], "answer": answers[i],
         "score": float(scored.scores[i]), "correct": bool(scored.correct[i])}
        for i in range(n)
    ]
