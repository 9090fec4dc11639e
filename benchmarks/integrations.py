"""The engine inside verl and TRL, against those libraries' own code, measured in one run.

verl: each of verl's estimators (``verl.trainer.ppo.core_algos``) and the drop-in of the same
name in ``asyppo.integrations.verl`` on the same padded ``[B, L]`` batch (float32, response
lengths uniform in [1, L], dense random rewards and values, groups of 8 rows): seconds (median
of ``--repeats``), speed-up, and the largest absolute difference of every returned tensor.

TRL: the same tiny random Qwen3 actor, prompts and reward (the share of digits in the response)
trained with GRPO three ways: TRL's ``GRPOTrainer`` (``loss_type="grpo"``, TRL's advantages),
``AsyppoGRPOTrainer`` (the engine's advantages and asyppo's loss inside TRL), and asyppo's own
trainer (``python -m asyppo train algo.name=grpo``). Samples/s are sampled responses over the
summed times of steps 2..N (startup and the first step's lazy initialisation excluded); the
reward curve is the mean reward per step.

    python benchmarks/integrations.py        # both parts: the figures in benchmarks/RESULTS.md
    python benchmarks/integrations.py --part verl --rows 256 --cols 2048
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REWARD_FILE = """
def digit_share(response: str, answer: str) -> float:
    return sum(c.isdigit() for c in response) / max(len(response), 1)
"""


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls after one untimed warm-up call, and the last result."""
    fn()
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def bench_verl(rows: int, cols: int, repeats: int) -> None:
    from asyppo.integrations import verl as adapter
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo import core_algos

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, cols + 1, (rows,), generator=g)
    mask = (torch.arange(cols)[None, :] < lengths[:, None]).float()
    rewards = torch.randn(rows, cols, generator=g)
    values = torch.randn(rows, cols, generator=g)
    index = np.repeat(np.arange(rows // 8 + 1), 8)[:rows].astype(str).astype(object)
    config = AlgoConfig(gamma=0.99)
    cases = [
        ("compute_gae_advantage_return", (rewards, values, mask, 0.99, 0.95)),
        ("compute_grpo_outcome_advantage", (rewards, mask, index)),
        ("compute_rloo_outcome_advantage", (rewards, mask, index)),
        ("compute_reinforce_plus_plus_outcome_advantage", (rewards, mask, config)),
    ]
    print(
        f"verl {_version('verl')}: B={rows}, L={cols} ({rows * cols:,} padded, "
        f"{int(mask.sum()):,} response tokens), float32, median of {repeats}"
    )
    print(f"{'function':<48}{'verl s':>9}{'engine s':>10}{'speed-up':>10}{'max |diff|':>12}")
    for name, args in cases:
        theirs_fn, ours_fn = getattr(core_algos, name), getattr(adapter, name)
        t_theirs, theirs = median_time(lambda f=theirs_fn, a=args: f(*_fresh(a)), repeats)
        t_ours, ours = median_time(lambda f=ours_fn, a=args: f(*a), repeats)
        diff = max(float((a - b).abs().max()) for a, b in zip(ours, theirs, strict=True))
        print(f"{name:<48}{t_theirs:>9.3f}{t_ours:>10.3f}{t_theirs / t_ours:>9.1f}x{diff:>12.2e}")


def _fresh(args: tuple) -> tuple:
    """verl's group estimators write into the summed scores in place; give each call a copy."""
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def tiny_model(root: Path, hidden: int) -> Path:
    from asyppo.toy.tokenizer import build_toy_tokenizer
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_toy_tokenizer()
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=hidden // 2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    path = root / "actor"
    Qwen3ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def run_trl(
    model_dir: Path,
    prompts: list[str],
    ours: bool,
    steps: int,
    n_prompts: int,
    n: int,
    max_new: int,
    out: Path,
) -> tuple[list[float], list[float]]:
    from asyppo.algos import AlgoConfig
    from asyppo.integrations.trl import AsyppoGRPOTrainer
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    def digit_share(completions: list[str], **kwargs: object) -> list[float]:
        return [sum(c.isdigit() for c in s) / max(len(s), 1) for s in completions]

    args = GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=n_prompts * n,
        num_generations=n,
        max_completion_length=max_new,
        max_steps=steps,
        report_to=[],
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        warmup_steps=0,
        loss_type="grpo",
        scale_rewards="group",
        beta=0.0,
        seed=0,
        disable_tqdm=True,
    )
    kwargs = {
        "model": AutoModelForCausalLM.from_pretrained(model_dir),
        "reward_funcs": digit_share,
        "args": args,
        "train_dataset": Dataset.from_list([{"prompt": p} for p in prompts]),
        "processing_class": AutoTokenizer.from_pretrained(model_dir),
    }
    trainer = (
        AsyppoGRPOTrainer(**kwargs, algo=AlgoConfig(name="grpo")) if ours else GRPOTrainer(**kwargs)
    )
    trainer.remove_callback(PrinterCallback)  # one dict per step on stdout
    trainer.train()
    logs = [row for row in trainer.state.log_history if "step_time" in row]
    return [row["step_time"] for row in logs], [row["reward"] for row in logs]


def run_asyppo(
    model_dir: Path, root: Path, rows: list[dict], steps: int, n_prompts: int, n: int, max_new: int
) -> tuple[list[float], list[float]]:
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "rewards.py").write_text(REWARD_FILE)
    out = root / "asyppo_run"
    overrides = [
        "algo.name=grpo",
        f"actor.path={model_dir}",
        f"data.train={root / 'train.jsonl'}",
        f"data.eval={root / 'train.jsonl'}",
        f"trainer.output_dir={out}",
        f"rollout.prompts_per_step={n_prompts}",
        f"rollout.n={n}",
        f"rollout.max_new_tokens={max_new}",
        f"trainer.steps={steps}",
        "trainer.eval_every=0",
        "reward.verifier=none",
        f"reward.user_fn={root / 'rewards.py'}:digit_share",
        "reward.truncated_score=null",
        "logging.tensorboard=false",
        "logging.progress_bar=false",
        "logging.console_every=0",
        "actor.optim.warmup_steps=0",
        "actor.optim.schedule=constant",
        "actor.optim.lr=1e-3",
        "trainer.mini_batch_size=null",
        "trainer.seed=0",
    ]
    subprocess.run(
        [sys.executable, "-m", "asyppo", "train", *overrides], check=True, stdout=subprocess.DEVNULL
    )
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [m for m in metrics if "time/step" in m]
    return [m["time/step"] for m in train], [m["reward/mean"] for m in train]


def bench_trl(steps: int, n_prompts: int, n: int, max_new: int, hidden: int) -> None:
    from asyppo.toy.task import ArithmeticTask, task_splits

    rows, _ = task_splits(ArithmeticTask(low=10, high=49, n_eval=8))
    rows = rows[: n_prompts * steps]
    print(
        f"\nGRPO on the same tiny Qwen3 (hidden {hidden}, 2 layers), {n_prompts} prompts x {n} "
        f"samples x {max_new} new tokens per step, {steps} steps; trl {_version('trl')}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = tiny_model(root, hidden)
        prompts = [r["prompt"] for r in rows]
        results = {
            "TRL GRPOTrainer": run_trl(
                model_dir, prompts, False, steps, n_prompts, n, max_new, root / "a"
            ),
            "AsyppoGRPOTrainer (engine in TRL)": run_trl(
                model_dir, prompts, True, steps, n_prompts, n, max_new, root / "b"
            ),
            "asyppo trainer, algo.name=grpo": run_asyppo(
                model_dir, root, rows, steps, n_prompts, n, max_new
            ),
        }
    timed = (steps - 1) * n_prompts * n  # the first step (lazy initialisation) is not timed
    base = timed / sum(results["TRL GRPOTrainer"][0][1:])
    marks = sorted({0, steps // 4, steps // 2, 3 * steps // 4, steps - 1})
    print(
        f"{'run':<36}{'samples/s':>10}{'vs TRL':>8}   reward at steps "
        + ", ".join(str(m + 1) for m in marks)
    )
    for name, (step_times, curve) in results.items():
        rate = timed / sum(step_times[1:])
        print(
            f"{name:<36}{rate:>10.1f}{rate / base:>7.2f}x   "
            + ", ".join(f"{curve[m]:.3f}" for m in marks)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["verl", "trl", "all"], default="all")
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--cols", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=64)
    a = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if a.part in ("verl", "all"):
        bench_verl(a.rows, a.cols, a.repeats)
    if a.part in ("trl", "all"):
        bench_trl(a.steps, a.prompts, a.n, a.max_new_tokens, a.hidden)


if __name__ == "__main__":
    main()
