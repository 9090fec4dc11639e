"""Benchmark of the Rust data engine (docs/data_engine.md). Not a test: it prints a Markdown table.

For each kernel on a packed batch it reports the median wall time, the median time of a plain
numpy copy of the same input + output bytes (every input and output array copied once, measured
in the same run), and their ratio. GAE is also compared with the per-timestep torch loop over a
padded ``[1024, 8192]`` batch that common RL frameworks use, and the percentile masks with two
``torch.kthvalue`` calls.

    python benchmarks/data_engine.py            # 4M-token and 16M-token batches
    python benchmarks/data_engine.py --quick    # 4M-token batch only, fewer repeats
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from asyppo import engine
from asyppo.runtime.allocator import release_freed_memory

# Kernels over one value per sequence (N = 1,024 or 4,096), not over tokens.
PER_SEQUENCE = (
    "shard_groups (M=2)",
    "group_advantages",
    "pack_microbatches",
    "balanced_partition (8)",
)


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS.

    Every call here, kernel or copy, returns fresh arrays of megabytes. By default glibc serves
    such sizes with ``mmap`` (or trims them off the heap) and hands the pages back on free, so the
    next call page-faults them in again, about 0.5 us per 4 KiB page, and whether it does depends
    on which sizes the process freed before (glibc adapts its thresholds). That made the same
    kernel measure 1.7 ms or 3.3 ms from one run to the next. Fixing both thresholds above every
    array here (the trainer's ``runtime.release_freed_memory`` mechanism, at 1 GiB instead of
    1 MiB) serves them all from a heap that is never trimmed, so both sides of every ratio reuse
    memory as a long-running trainer's allocator does. Returns whether glibc took the setting.
    """
    return release_freed_memory(1 << 30)


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median time of one call of ``fn`` over ``repeats`` samples, after a warm-up call (first-touch
    page faults, thread pool start). Calls that take microseconds are timed in batches of about
    1 ms each and averaged, so that the clock's resolution does not matter."""
    start = time.perf_counter()
    fn()
    number = max(1, int(1e-3 / max(time.perf_counter() - start, 1e-7)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def copy_time(arrays: Sequence[Any], repeats: int) -> float:
    """Time of copying every array once with numpy (reads and writes the same bytes)."""
    arrays = [np.asarray(a) for a in arrays]
    return median_time(lambda: [np.copy(a) for a in arrays], repeats)


def flat(result: Any) -> list[np.ndarray]:
    if isinstance(result, np.ndarray):
        return [result]
    return [np.asarray(x) for x in result]


def make_batch(n_seq: int, max_len: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, n_seq)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    t = int(offsets[-1])
    rewards = np.zeros(t, np.float32)
    rewards[offsets[1:] - 1] = rng.integers(0, 2, n_seq)
    return {
        "lengths": lengths.astype(np.int64),
        "offsets": offsets,
        "rewards": rewards,
        "critic_values": rng.normal(size=(2, t)).astype(np.float32),
        "values": rng.normal(size=t).astype(np.float32),
        "std": np.abs(rng.normal(size=t)).astype(np.float32),
        "mask": rng.random(t) < 0.9,
        "group_ids": np.repeat(np.arange(n_seq // 8 + 1), 8)[:n_seq].astype(np.int64),
        "scores": rng.integers(0, 2, n_seq).astype(np.float32),
    }


def padded_torch_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
):
    """The per-timestep loop over a padded [B, L] batch as written in common PPO implementations."""
    length = rewards.shape[1]
    last = torch.zeros(rewards.shape[0])
    reversed_adv = []
    for t in reversed(range(length)):
        next_values = values[:, t + 1] if t < length - 1 else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last = delta + gamma * lam * last
        last = last * mask[:, t]
        reversed_adv.append(last)
    advantages = torch.stack(reversed_adv[::-1], dim=1)
    return advantages, advantages + values


def kernels(b: dict[str, np.ndarray]) -> list[tuple[str, Callable[[], Any], list[np.ndarray]]]:
    """(name, call, inputs) for every kernel of the facade."""
    return [
        (
            "gae",
            lambda: engine.gae(b["rewards"], b["values"], b["offsets"], 1.0, 1.0),
            [b["rewards"], b["values"], b["offsets"]],
        ),
        (
            "aggregate_values (M=2)",
            lambda: engine.aggregate_values(b["critic_values"]),
            [b["critic_values"]],
        ),
        (
            "percentile_masks (batch)",
            lambda: engine.percentile_masks(b["std"], 0.2, 0.2),
            [b["std"]],
        ),
        (
            "percentile_masks (sequence)",
            lambda: engine.percentile_masks(
                b["std"], 0.2, 0.2, offsets=b["offsets"], scope="sequence"
            ),
            [b["std"], b["offsets"]],
        ),
        (
            "masked_whiten",
            lambda: engine.masked_whiten(b["values"], b["mask"]),
            [b["values"], b["mask"]],
        ),
        (
            "broadcast_to_tokens",
            lambda: engine.broadcast_to_tokens(b["scores"], b["offsets"]),
            [b["scores"], b["offsets"]],
        ),
        ("shard_groups (M=2)", lambda: engine.shard_groups(b["group_ids"], 2, 0), [b["group_ids"]]),
        (
            "group_advantages",
            lambda: engine.group_advantages(b["scores"], b["group_ids"]),
            [b["scores"], b["group_ids"]],
        ),
        (
            "pack_microbatches",
            lambda: engine.pack_microbatches(b["lengths"], 65536),
            [b["lengths"]],
        ),
        (
            "balanced_partition (8)",
            lambda: engine.balanced_partition(b["lengths"], 8),
            [b["lengths"]],
        ),
    ]


def padded_loop_time(b: dict[str, np.ndarray], max_len: int, repeats: int) -> float:
    """Time of ``padded_torch_gae`` on the batch laid out as padded ``[N, max_len]`` tensors."""
    valid = torch.from_numpy(np.arange(max_len)[None, :] < b["lengths"][:, None])
    rewards = torch.zeros(valid.shape)
    values = torch.zeros(valid.shape)
    rewards[valid] = torch.from_numpy(b["rewards"])
    values[valid] = torch.from_numpy(b["values"])
    mask = valid.float()
    return median_time(lambda: padded_torch_gae(rewards, values, mask, 1.0, 1.0), repeats)


def kthvalue_time(std: np.ndarray, frac: float, repeats: int) -> float:
    """Time of the two ``torch.kthvalue`` calls (and comparisons) that approximate the masks."""
    s, t = torch.from_numpy(std), len(std)
    k = max(int(frac * t), 1)

    def kth() -> Any:
        lo = torch.kthvalue(s, k).values
        hi = torch.kthvalue(s, t - k + 1).values
        return s > lo, s < hi

    return median_time(kth, repeats)


def milliseconds(seconds: float) -> str:
    """``seconds`` in ms with 3 decimals, or 4 below 0.1 ms (the per-sequence kernels)."""
    return f"{seconds * 1e3:.{3 if seconds >= 1e-4 else 4}f}"


def run(label: str, n_seq: int, max_len: int, repeats: int, baselines: bool) -> list[str]:
    b = make_batch(n_seq, max_len, seed=n_seq)
    rows = []
    for name, call, inputs in kernels(b):
        outputs = flat(call())
        kernel = median_time(call, repeats)
        copy = copy_time([*inputs, *outputs], repeats)
        extra = ""
        if baselines and name == "gae":
            loop = padded_loop_time(b, max_len, max(1, repeats // 3))
            extra = f"padded torch loop {loop * 1e3:.0f} ms: engine {loop / kernel:.0f}x faster"
        if baselines and name == "percentile_masks (batch)":
            kt = kthvalue_time(b["std"], 0.2, repeats)
            extra = f"torch.kthvalue x2 {kt * 1e3:.1f} ms: engine {kt / kernel:.1f}x faster"
        if name in PER_SEQUENCE:
            # A copy of a few KB is not a meaningful yardstick for these: give the unit cost.
            extra = f"{kernel / n_seq * 1e9:.0f} ns per sequence"
        rows.append(
            f"| {label} | {name} | {milliseconds(kernel)} | {milliseconds(copy)} | "
            f"{kernel / copy:.2f} | {extra} |"
        )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="4M-token batch only, 3 repeats")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    torch.set_num_threads(os.cpu_count() or 1)
    kept = keep_freed_memory()
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
        f"freed memory kept for reuse (glibc mallopt): {'yes' if kept else 'no'}"
    )
    print()
    print("| batch | kernel | time (ms) | numpy copy of its bytes (ms) | ratio | baseline |")
    print("|---|---|---:|---:|---:|---|")
    batches = [("1,024 seqs, ~4.2M tokens", 1024, 8192, True)]
    if not args.quick:
        batches.append(("4,096 seqs, ~16.8M tokens", 4096, 8192, False))
    for label, n_seq, max_len, baselines in batches:
        for row in run(label, n_seq, max_len, repeats, baselines):
            print(row, flush=True)


if __name__ == "__main__":
    main()
