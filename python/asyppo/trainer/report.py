"""What the CLI prints: the end-of-run summary, and ``asyppo eval`` over saved models."""

from __future__ import annotations

import sys
from pathlib import Path

from asyppo import data, observability
from asyppo.config.schema import TrainConfig
from asyppo.models import context_length, load_tokenizer, read_model_config, stop_token_ids
from asyppo.runtime import InlineRuntime
from asyppo.trainer.evaluate import evaluate
from asyppo.trainer.loop import RunResult
from asyppo.trainer.roles.reward import RewardRole
from asyppo.trainer.roles.rollout import RolloutRole
from asyppo.trainer.setup import configure_torch, resolve


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
    """Greedy accuracy (and, with ``k > 1``, avg@k and pass@k) of the causal LM in ``model_dir`` (a
    directory, or a ``gguf:`` / ``builtin:`` path) on each file (or ``builtin:`` dataset); printed with the share of answers cut at the budget and a few sample responses
    (``logging.eval_samples``). ``max_new_tokens`` None means ``rollout.max_new_tokens``; prompts
    longer than ``data.max_prompt_tokens`` (default: the model's context minus the response budget)
    are handled as ``data.long_prompts`` says; torch uses ``runtime.cpu_threads``. ValueError for
    ``k`` or ``max_new_tokens`` below 1."""
    if k < 1:
        raise ValueError(f"eval: --k (samples per prompt) must be >= 1, got {k}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise ValueError(f"eval: --max-new-tokens must be >= 1, got {max_new_tokens}")
    configure_torch(cfg)
    model_dir = resolve(str(model_dir))
    budget = cfg.rollout.max_new_tokens if max_new_tokens is None else max_new_tokens
    limit = data.prompt_token_limit(
        cfg.data.max_prompt_tokens,
        context_length=context_length(read_model_config(model_dir, what="eval --model")),
        max_new_tokens=budget,
    )
    tokenizer = load_tokenizer(model_dir)
    runtime = InlineRuntime()
    rollout = runtime.spawn(
        "rollout", RolloutRole, config=cfg.rollout, model_path=str(model_dir), device=cfg.actor.device,
        dtype=cfg.actor.dtype, attn_implementation=cfg.actor.attn_implementation,
        eos_token_id=stop_token_ids(tokenizer, model_dir), pad_token_id=int(tokenizer.pad_token_id), seed=cfg.trainer.seed,
        tokenizer=tokenizer,
    )
    reward = runtime.spawn("reward", RewardRole, config=cfg.reward, tokenizer=tokenizer)
    results: dict[str, dict[str, float]] = {}
    sizes: dict[str, int] = {}
    try:
        for path in data_files:
            encoded = data.encode_prompts(
                tokenizer,
                data.load_prompts(resolve(path), prompt_key=cfg.data.prompt_key, answer_key=cfg.data.answer_key),
                system_prompt=cfg.data.system_prompt,
                chat_template=cfg.data.chat_template,
                max_prompt_tokens=limit,
                long_prompts=cfg.data.long_prompts,
                what=path,
            )
            records = encoded.records
            result = evaluate(
                rollout, reward, [encoded.token_ids[r.index] for r in records], [r.answer for r in records],
                max_new_tokens=budget, k=k, temperature=temperature, samples=cfg.logging.eval_samples,
                stop=cfg.rollout.stop,
            )
            observability.print_samples(0, result.samples)
            if result.warning:
                print(f"warning: {path}: {result.warning}", file=sys.stderr, flush=True)
            results[path] = result.metrics
            sizes[path] = len(records)
    finally:
        runtime.shutdown()
    # avg@k and pass@k are sampled only for k > 1 (avg@1 would be one sample per prompt).
    columns = {"greedy": "eval/accuracy"}
    if k > 1:
        columns.update({f"avg@{k}": f"eval/avg@{k}", f"pass@{k}": f"eval/pass@{k}"})
    columns["cut at budget"] = "eval/truncated"
    rows = [("dataset", " | ".join(["prompts", *columns]))]
    for path, metrics in results.items():
        cells = [str(sizes[path]), *(_percent(metrics.get(name)) for name in columns.values())]
        rows.append((path, " | ".join(cells)))
    observability.print_summary(rows)
    return results
