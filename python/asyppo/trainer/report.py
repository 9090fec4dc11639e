"""What the CLI prints: the end-of-run summary, and ``asyppo eval`` over saved models."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asyppo import data, observability
from asyppo.config.schema import TrainConfig
from asyppo.models import load_actor, load_tokenizer
from asyppo.runtime import InlineRuntime
from asyppo.trainer.evaluate import evaluate
from asyppo.trainer.loop import RunResult
from asyppo.trainer.roles.reward import RewardRole
from asyppo.trainer.roles.rollout import RolloutRole


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def print_run_report(result: RunResult) -> None:
    """The summary table: held-out accuracy at start and end, the gain, time, where things are."""
    gain = None
    if result.start_accuracy is not None and result.end_accuracy is not None:
        gain = f"{100 * (result.end_accuracy - result.start_accuracy):+.1f} points"
    rows = [
        ("steps", str(result.steps)),
        ("eval accuracy at start", _percent(result.start_accuracy)),
        ("eval accuracy at end", _percent(result.end_accuracy)),
        ("accuracy gain", gain or "n/a"),
        ("wall time", f"{result.seconds:.1f} s"),
        ("run directory", str(result.run_dir)),
        ("metrics", str(result.run_dir / "metrics.jsonl")),
        ("checkpoint", str(result.checkpoint) if result.checkpoint else "none"),
        ("HF export", str(result.export) if result.export else "none"),
    ]
    observability.print_summary(rows)


def evaluate_model(
    cfg: TrainConfig,
    model_dir: str | Path,
    data_files: list[str],
    *,
    k: int,
    temperature: float,
    max_new_tokens: int | None,
) -> dict[str, dict[str, float]]:
    """Greedy accuracy, avg@k and pass@k of the causal LM in ``model_dir`` on each file; printed."""
    tokenizer = load_tokenizer(model_dir)
    runtime = InlineRuntime()
    rollout = runtime.spawn(
        "rollout", RolloutRole, config=cfg.rollout, model=load_actor(model_dir),
        eos_token_id=int(tokenizer.eos_token_id), pad_token_id=int(tokenizer.pad_token_id), seed=cfg.trainer.seed,
    )
    reward = runtime.spawn("reward", RewardRole, config=cfg.reward, tokenizer=tokenizer)
    results: dict[str, dict[str, float]] = {}
    sizes: dict[str, int] = {}
    for path in data_files:
        records = data.load_prompts(path, prompt_key=cfg.data.prompt_key, answer_key=cfg.data.answer_key)
        texts = [data.render_prompt(tokenizer, r.prompt, system_prompt=cfg.data.system_prompt) for r in records]
        ids = [list(t) for t in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        metrics = evaluate(
            rollout, reward, ids, [r.answer for r in records],
            max_new_tokens=max_new_tokens or cfg.rollout.max_new_tokens, k=k, temperature=temperature,
        )
        results[path] = metrics
        sizes[path] = len(records)
    rows = [("dataset", f"prompts | greedy | avg@{k} | pass@{k}")]
    for path, metrics in results.items():
        cells = [metrics.get(name, np.nan) for name in ("eval/accuracy", f"eval/avg@{k}", f"eval/pass@{k}")]
        rows.append((path,  f"{sizes[path]} | " + " | ".join(f"{100 * c:.1f}%" for c in cells)))
    observability.print_summary(rows)
    runtime.shutdown()
    return results
