"""``python -m asyppo plan``'s estimate against the peak memory the trainer logs, on the CPU.

Not a test. Builds the random-init Qwen3-style models of ``benchmarks/e2e.py`` (a 67.8M actor, two
17.2M mini-critics, over the toy tokenizer: large enough that model state, not the libraries,
shows in RSS), runs ``python -m asyppo train`` for 2 steps with ``runtime.backend=local`` (a process
per role, so each role's peak RSS is logged: ``perf/peak_rss_mb_<role>``) for a few micro-batch
budgets, with and without activation checkpointing, and compares each role's logged peak with the
plan's estimate of the same config.

Accounting: a role process's peak RSS = a baseline + what the role allocated. Two baselines are
reported. (a) The reward role's peak in the same run: a role process that imports the same libraries
and loads the tokenizer but holds no model. (b) The same role's peak in a run of the embedded toy
models (0.3M / 0.08M parameters, so the role's own tensors are ~1-10 MiB, their estimate is added
back): it also holds what running any model costs (modeling code, autograd and oneDNN / MKL
scratch, the glibc arena), ~250 MiB more than (a). The rollout
process reads the actor's weights through shared memory (``live``), and shared pages count in the
RSS of each process that touches them, so the rollout's measured figure is compared with its KV
cache + sampling logits + the actor's weights.

    python benchmarks/plan_vs_measured.py [--steps 2] [--measurements out.json] [--reuse out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPT_TOKENS = 6  # the toy prompts ("58+78=") are at most 6 tokens, no chat template
COMMON = [
    "data.train={train}", "data.eval={eval}", "data.eval_limit=8", "actor.path={actor}", "critic.path={mini}",
    "critic.count=2", "rollout.prompts_per_step=8", "rollout.n=4", "rollout.max_new_tokens=64",
    "trainer.mini_batch_size=null", "trainer.eval_at_start=false", "trainer.eval_every=0",
    "trainer.export_hf=false", "logging.tensorboard=false", "logging.progress_bar=false",
    "logging.console_every=0", "logging.eval_samples=0", "runtime.cpu_threads=1", "runtime.backend=local",
]
RUNS = {
    "micro 256": ["trainer.micro_batch_tokens=256"],
    "micro 2048": ["trainer.micro_batch_tokens=2048"],
    "micro 2048 + ckpt": ["trainer.micro_batch_tokens=2048", "actor.gradient_checkpointing=true",
                          "critic.gradient_checkpointing=true"],
}
ROLES = ("actor", "critic0", "critic1", "rollout")
#: The per-role baseline (b): the embedded toy models, local backend, 2 steps, the schema's defaults.
TOY_RUN = ["runtime.backend=local", "trainer.eval_at_start=false", "trainer.eval_every=0", "data.eval_limit=8",
           "logging.tensorboard=false", "logging.progress_bar=false", "trainer.export_hf=false",
           "logging.console_every=0", "logging.eval_samples=0"]
TOY = "toy baseline"


def measure(assets: dict[str, str], root: Path, steps: int) -> dict[str, dict[str, float]]:
    """Per run: the last step's ``perf/peak_rss_mb_<role>`` (MiB) for every role process."""
    out = {}
    for name, overrides in {TOY: TOY_RUN, **{k: [o.format(**assets) for o in COMMON] + v for k, v in RUNS.items()}}.items():
        run_dir = root / name.replace(" ", "_").replace("+", "")
        overrides = overrides + [f"trainer.steps={steps}", f"trainer.output_dir={run_dir}"]
        done = subprocess.run([sys.executable, "-m", "asyppo", "train", *overrides], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            sys.exit(f"{name}: training failed:\n{done.stderr[-3000:]}")
        last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
        out[name] = {k.removeprefix("perf/peak_rss_mb_"): v for k, v in last.items() if k.startswith("perf/peak_rss_mb_")}
        print(f"measured {name}: {out[name]}", flush=True)
    return out


def estimates(assets: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per run and role, the plan's estimate of what the role's process allocates (MiB)."""
    from asyppo.config import load_train_config
    from asyppo.plan import plan_memory

    out = {}
    for name, overrides in {TOY: TOY_RUN, **{k: [o.format(**assets) for o in COMMON] + v for k, v in RUNS.items()}}.items():
        cfg = load_train_config(None, overrides)
        plan = plan_memory(cfg, prompt_tokens=PROMPT_TOKENS)
        roles = {r.role: r for r in plan.roles}
        actor_weights = roles["actor"].weights
        out[name] = {r.role: (r.total + (actor_weights if r.shared_weights else 0)) / 2**20
                     for r in plan.roles if r.role in ROLES}
        out[name]["_parts"] = {r.role: {k: getattr(r, k) / 2**20 for k in
                                        ("weights", "grads", "optimizer", "activations", "logits", "kv_cache")}
                               for r in plan.roles if r.role in ROLES}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--measurements", help="write the measured peaks to this JSON file")
    parser.add_argument("--reuse", help="compare with the peaks of an earlier --measurements file (no training)")
    args = parser.parse_args()
    from e2e import build_assets

    with tempfile.TemporaryDirectory() as tmp:
        assets = build_assets(Path(tmp))
        print(f"actor {int(assets['actor_params']) / 1e6:.1f}M, mini-critics {int(assets['mini_params']) / 1e6:.1f}M "
              "parameters", flush=True)
        if args.reuse:
            measured = json.loads(Path(args.reuse).read_text())["measured"]
        else:
            measured = measure(assets, Path(tmp), args.steps)
        estimated = estimates(assets)
    if args.measurements and not args.reuse:
        Path(args.measurements).write_text(json.dumps({
            "measured": measured, "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
            "machine": f"{platform.machine()}, {platform.python_version()}"}, indent=1))
    from rich.console import Console
    from rich.table import Table

    table = Table(title="plan estimate vs measured peak RSS above a baseline (MiB)")
    for col in ("run", "role", "estimate", "peak", "(a) - reward", "error (a)", "(b) - toy", "error (b)"):
        table.add_column(col, justify="left" if col in ("run", "role") else "right")
    errors: dict[str, list[float]] = {"a": [], "b": []}
    toy = measured.get(TOY)
    for name in (n for n in RUNS if n in measured):
        for role in ROLES:
            est = estimated[name][role]
            peak = measured[name][role]
            got_a = peak - measured[name]["reward"]
            error_a = (est - got_a) / got_a
            errors["a"].append(abs(error_a))
            cells = [f"{est:.0f}", f"{peak:.0f}", f"{got_a:.0f}", f"{100 * error_a:+.0f}%"]
            if toy is not None:
                got_b = peak - (toy[role] - estimated[TOY][role])
                error_b = (est - got_b) / got_b
                errors["b"].append(abs(error_b))
                cells += [f"{got_b:.0f}", f"{100 * error_b:+.0f}%"]
            table.add_row(name, role, *cells)
    Console(width=140).print(table)
    for key, values in errors.items():
        if values:
            print(f"baseline ({key}): mean |error| {100 * sum(values) / len(values):.0f}%, max {100 * max(values):.0f}%")
    print("components of the estimate (MiB):")
    for name in (n for n in estimated if n in measured):
        for role, parts in estimated[name]["_parts"].items():
            print(f"  {name:18s} {role:8s} " + " ".join(f"{k} {v:.0f}" for k, v in parts.items() if v))


if __name__ == "__main__":
    main()
