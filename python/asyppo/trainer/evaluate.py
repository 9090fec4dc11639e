"""Held-out evaluation through the rollout and reward roles: greedy accuracy, avg@k and pass@k."""

from __future__ import annotations

import numpy as np

from asyppo.generation import SamplingParams
from asyppo.pass_at_k import avg_at_k, pass_at_k
from asyppo.runtime import RoleHandle


def evaluate(
    rollout: RoleHandle,
    reward: RoleHandle,
    prompt_ids: list[list[int]],
    answers: list[str],
    *,
    max_new_tokens: int,
    k: int = 1,
    temperature: float = 1.0,
) -> dict[str, float]:
    """``eval/accuracy`` (greedy, one sample per prompt); with ``k > 1`` also ``eval/avg@k`` and
    ``eval/pass@k`` over k samples per prompt at ``temperature`` (unbiased pass@k estimator)."""
    if not prompt_ids:
        return {}
    greedy = rollout.call("generate", prompt_ids, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    out = greedy.result()
    scored = reward.call("score", out.token_ids, out.offsets, answers).result()
    metrics = {"eval/accuracy": float(np.mean(scored.correct)), "eval/response_length": float(np.mean(out.lengths))}
    if k > 1:
        sampling = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, n=k)
        out = rollout.call("generate", prompt_ids, sampling).result()
        repeated = [answers[i] for i in out.prompt_index]
        correct = np.asarray(reward.call("score", out.token_ids, out.offsets, repeated).result().correct)
        table = correct.reshape(len(prompt_ids), k)
        metrics[f"eval/avg@{k}"] = float(avg_at_k(table))
        metrics[f"eval/pass@{k}"] = float(np.mean([pass_at_k(k, int(c), k) for c in table.sum(axis=1)]))
    return metrics
