"""End-to-end step time and peak memory: AsyPPO vs classic PPO vs GRPO on one tiny CPU setup.

Not a test. Builds random-init Qwen3-style models over the toy tokenizer (no download): an actor,
a "full" critic of the actor's size (classic PPO) and "mini" critics of about a quarter of its
parameters (AsyPPO, two of them). Each algorithm runs in its own subprocess so that its peak RSS is
its own; each does ``--warmup`` untimed steps then ``--steps`` timed ones through the real
``Trainer.train_step`` (generation, rewards, values, advantages, critic and actor updates, sync).
Random-init actors almost never emit EOS, so every run generates the same number of tokens.

    python benchmarks/e2e.py [--backend inline local ray] [--max-staleness 0 1] [--steps 4] [--warmup 1]
                             [--algo asyppo ppo grpo] [--layout single dp2 zero2 zero3]
                             [--depth 1] [--gradient-checkpointing] [--phase-memory]

``--backend`` and ``--max-staleness`` take several values: every combination runs, in one
invocation, so the ratios compare runs of the same session (``max-staleness 1`` runs AsyPPO only).
With the ``local`` and ``ray`` backends the roles' peak RSS is summed over their processes and the
driver's (Ray's own processes, raylet, GCS and object store, are not counted). A ``ray`` run starts
its own local cluster, before the timed steps. Every backend besides ``inline`` is compared with it
(step time against ``inline``'s, and ``ray`` against ``local``: Ray's per-step overhead).

``--layout`` (``local`` and ``ray`` backends) runs the trained roles as one worker each
(``single``), or as two data-parallel workers each (``dp2``: actor.replicas / critic.replicas = 2),
also under DeepSpeed ZeRO-2 or ZeRO-3 (``zero2``, ``zero3``); every layout is compared with
``single`` on the same backend.

``--gradient-checkpointing`` turns activation checkpointing on for the actor and every critic in all
runs alike (the setting large-model runs use), so the shared activation memory shrinks.

``--phase-memory`` is a diagnostic run (Linux, inline backend): it resets the kernel's RSS
high-water mark at every phase boundary and prints RSS after imports and after building the roles,
then each phase's peak over all steps. Take the recorded ratios from a run without it.

Bars: AsyPPO / PPO peak memory <= 0.85 and step time <= 0.9; AsyPPO / GRPO step time <= 1.3
(inline) and <= 1.10 (local and ray, which overlap the critics with the actor); AsyPPO with max_staleness 1 <= 0.85x its synchronous local step.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

# Large enough that model and optimizer state, not the ~0.8 GB of imported libraries, dominate RSS.
ACTOR = {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 6, "num_attention_heads": 16,
         "num_key_value_heads": 4, "head_dim": 64}
# Narrower and shallower than the actor (as Qwen3-1.7B is next to Qwen3-14B): 0.25x its parameters.
MINI_CRITIC = {"hidden_size": 768, "intermediate_size": 1792, "num_hidden_layers": 3, "num_attention_heads": 12,
               "num_key_value_heads": 4, "head_dim": 64}
LAYOUTS = {
    "single": [],
    "dp2": ["actor.replicas=2", "critic.replicas=2"],
    "zero2": ["actor.replicas=2", "critic.replicas=2", "actor.zero_stage=2", "critic.zero_stage=2"],
    "zero3": ["actor.replicas=2", "critic.replicas=2", "actor.zero_stage=3", "critic.zero_stage=3"],
}
RUNS = {
    "asyppo": ["algo.name=asyppo", "critic.count=2", "critic.path={mini}"],
    "ppo": ["algo.name=ppo", "critic.count=1", "critic.path={full}"],
    "grpo": ["algo.name=grpo"],
}
COMMON = [
    "actor.path={actor}", "data.train={train}", "data.eval={eval}", "rollout.prompts_per_step=8",
    "rollout.n=4", "rollout.max_new_tokens=24", "trainer.mini_batch_size=null", "trainer.micro_batch_tokens=512", "logging.tensorboard=false",
    "logging.progress_bar=false", "logging.console_every=0", "runtime.cpu_threads=1",
]


def build_assets(root: Path, depth: int = 1) -> dict[str, str]:
    """Save the actor, full critic and mini critic as HF directories, plus toy prompt files.

    ``depth`` multiplies every model's layer count (the mini critic stays ~0.25x the actor).
    """
    import torch
    from asyppo.toy.task import ArithmeticTask, task_splits, write_jsonl
    from asyppo.toy.tokenizer import build_toy_tokenizer
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_toy_tokenizer()
    paths = {}
    for name, size in (("actor", ACTOR), ("full", ACTOR), ("mini", MINI_CRITIC)):
        torch.manual_seed(0)
        config = Qwen3Config(vocab_size=len(tokenizer), max_position_embeddings=128, tie_word_embeddings=True,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             bos_token_id=tokenizer.bos_token_id,
                             **{**size, "num_hidden_layers": size["num_hidden_layers"] * depth})
        model = Qwen3ForCausalLM(config)
        paths[name] = str(root / name)
        model.save_pretrained(paths[name])
        tokenizer.save_pretrained(paths[name])
        paths[f"{name}_params"] = str(sum(p.numel() for p in model.parameters()))
    train, held_out = task_splits(ArithmeticTask())
    paths["train"], paths["eval"] = str(root / "train.jsonl"), str(root / "eval.jsonl")
    write_jsonl(train, Path(paths["train"]))
    write_jsonl(held_out[:8], Path(paths["eval"]))
    return paths


def rss_mb() -> tuple[float, float]:
    """(current RSS, high-water mark since the last reset) in MiB, from /proc/self/status."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024.0, int(fields["VmHWM"].split()[0]) / 1024.0


def reset_rss_peak() -> None:
    """Reset the kernel's peak-RSS counter (``/proc/PID/clear_refs``, value 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def track_phase_peaks(peaks: dict[str, float]) -> None:
    """Make every trainer phase record its peak RSS into ``peaks`` (max over the steps)."""
    from contextlib import contextmanager

    from asyppo.trainer import loop

    class PeakTimer(loop.PhaseTimer):
        @contextmanager
        def phase(self, name: str):  # type: ignore[no-untyped-def]
            reset_rss_peak()
            with super().phase(name):
                yield
            peaks[name] = max(peaks.get(name, 0.0), rss_mb()[1])

    loop.PhaseTimer = PeakTimer  # type: ignore[misc]


def worker(algo: str, assets: dict[str, str], steps: int, warmup: int, out_dir: str, backend: str,
           max_staleness: int, phase_memory: bool = False, gradient_checkpointing: bool = False,
           layout: str = "single") -> dict[str, float]:
    """Runs in the subprocess: time ``steps`` training steps after ``warmup`` ones."""
    from asyppo.config import load_train_config
    from asyppo.trainer import Trainer

    peaks: dict[str, float] = {}
    if phase_memory:
        peaks["after imports"] = rss_mb()[0]
        track_phase_peaks(peaks)
    overrides = [o.format(**assets) for o in COMMON + RUNS[algo]] + [
        f"trainer.output_dir={out_dir}", f"runtime.backend={backend}", f"rollout.max_staleness={max_staleness}",
        *LAYOUTS[layout]]
    if gradient_checkpointing:
        overrides += ["actor.gradient_checkpointing=true", "critic.gradient_checkpointing=true"]
    trainer = Trainer(load_train_config(None, overrides))
    if phase_memory:
        peaks["after building roles"] = rss_mb()[0]
    kept = []
    try:
        for i in range(warmup + steps):
            metrics = trainer.train_step()
            if i >= warmup:
                kept.append(metrics)
    finally:
        trainer.close()

    def median(key: str) -> float:
        values = [m[key] for m in kept if key in m]
        return statistics.median(values) if values else 0.0

    def critic_busy(m: dict[str, float]) -> float:
        return max([v for k, v in m.items() if k.startswith("time/critic") and k.endswith("_update")], default=0.0)

    driver_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "generate_s": median("time/generate"), "hidden_s": median("time/generate_hidden"),
        "values_s": median("time/values"), "update_s": median("time/update"),
        "critic_s": statistics.median(critic_busy(m) for m in kept), "actor_s": median("time/actor_update"),
        "step_time_s": median("time/step"),
        "peak_rss_mb": driver_peak + kept[-1].get("perf/roles_peak_rss_mb", 0.0),
        "tokens_per_step": metrics["response/length_mean"] * 32,
        **{f"rss {name}": value for name, value in peaks.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--depth", type=int, default=1, help="multiply every model's layer count")
    parser.add_argument("--backend", nargs="+", default=["inline"], choices=["inline", "local", "ray"])
    parser.add_argument("--max-staleness", nargs="+", type=int, default=[0], choices=[0, 1])
    parser.add_argument("--algo", nargs="+", default=list(RUNS), choices=list(RUNS),
                        help="the algorithms to run (the ratios need all three)")
    parser.add_argument("--phase-memory", action="store_true", help="diagnostic: peak RSS per phase")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="activation checkpointing for the actor and every critic, in all runs")
    parser.add_argument("--layout", nargs="+", default=["single"], choices=list(LAYOUTS),
                        help="trained roles as one worker, two data-parallel ones, or two under ZeRO-2 / ZeRO-3")
    parser.add_argument("--worker", choices=sorted(RUNS), help=argparse.SUPPRESS)
    parser.add_argument("--assets", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, json.loads(args.assets), args.steps, args.warmup, args.out, args.backend[0],
                        args.max_staleness[0], args.phase_memory, args.gradient_checkpointing, args.layout[0])
        print(json.dumps(result))
        return
    plan = [(algo, backend, 0, "single") for backend in args.backend for algo in args.algo if 0 in args.max_staleness]
    plan += [("asyppo", backend, 1, "single") for backend in args.backend if 1 in args.max_staleness]
    plan += [(algo, backend, 0, layout) for layout in args.layout if layout != "single"
             for backend in args.backend if backend != "inline" for algo in args.algo]
    results: dict[tuple[str, str, int, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        assets = build_assets(Path(tmp), args.depth)
        for algo, backend, staleness, layout in plan:
            label = f"{algo}/{backend}" + (" async" if staleness else "") + ("" if layout == "single" else f" {layout}")
            cmd = [sys.executable, __file__, "--worker", algo, "--assets", json.dumps(assets),
                   "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--out", str(Path(tmp) / f"run_{algo}_{backend}_{staleness}_{layout}"),
                   "--backend", backend, "--max-staleness", str(staleness), "--layout", layout,
                   *(["--phase-memory"] if args.phase_memory else []),
                   *(["--gradient-checkpointing"] if args.gradient_checkpointing else [])]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"{label} worker failed:\n{done.stderr[-3000:]}")
            r = results[(algo, backend, staleness, layout)] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{label:20s} step {r['step_time_s']:.2f} s (generate {r['generate_s']:.2f}, hidden "
                  f"{r['hidden_s']:.2f}; values {r['values_s']:.2f}; update {r['update_s']:.2f}: critic "
                  f"{r['critic_s']:.2f}, actor {r['actor_s']:.2f})   peak RSS {r['peak_rss_mb']:.0f} MiB", flush=True)
            for key in (k for k in r if k.startswith("rss ")):
                print(f"          {key[4:]:22s} {r[key]:6.0f} MiB")
    print(f"\nparams: actor {int(assets['actor_params']):,}  full critic {int(assets['full_params']):,}  "
          f"mini critic {int(assets['mini_params']):,} "
          f"({int(assets['mini_params']) / int(assets['actor_params']):.2f}x the actor)")
    bars = {"inline": 1.3, "local": 1.10, "ray": 1.10}
    for backend in args.backend:
        a, p, g = (results.get((name, backend, 0, "single")) for name in ("asyppo", "ppo", "grpo"))
        ratios = {}
        if a and p and g:
            ratios = {
                "AsyPPO/PPO peak memory": (a["peak_rss_mb"] / p["peak_rss_mb"], 0.85),
                "AsyPPO/PPO step time": (a["step_time_s"] / p["step_time_s"], 0.9),
                "AsyPPO/GRPO step time": (a["step_time_s"] / g["step_time_s"], bars[backend]),
            }
        if a and (async_run := results.get(("asyppo", backend, 1, "single"))):
            ratios["AsyPPO async/sync step"] = (async_run["step_time_s"] / a["step_time_s"], 0.85)
        for name, (ratio, bar) in ratios.items():
            print(f"{backend:7s} {name:24s} {ratio:.2f}  (bar <= {bar}: {'met' if ratio <= bar else 'NOT met'})")
    for backend, base in (("local", "inline"), ("ray", "inline"), ("ray", "local")):
        for algo in RUNS:
            if (algo, backend, 0, "single") in results and (algo, base, 0, "single") in results:
                ratio = results[(algo, backend, 0, "single")]["step_time_s"] / results[(algo, base, 0, "single")]["step_time_s"]
                print(f"{algo:7s} {backend}/{base} step time {ratio:.2f}")
    for (algo, backend, _, layout), r in results.items():
        if layout != "single" and (single := results.get((algo, backend, 0, "single"))):
            print(f"{algo:7s} {backend} {layout}/single step time {r['step_time_s'] / single['step_time_s']:.2f}, "
                  f"peak RSS {r['peak_rss_mb'] / single['peak_rss_mb']:.2f}")
    print(f"\nmachine: {platform.machine()} {platform.processor() or ''} "
          f"{len(__import__('os').sched_getaffinity(0))} cores; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
