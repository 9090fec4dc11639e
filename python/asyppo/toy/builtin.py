"""``builtin:`` assets of the embedded default, built in code and cached on disk.

``resolve_builtin("builtin:toy-actor", cache_dir)`` returns an HF model directory (config,
safetensors weights, generation config, tokenizer) that ``AutoModelForCausalLM`` and
``AutoTokenizer`` load; ``toy-critic`` a smaller random-init backbone with the same tokenizer;
``toy-train`` / ``toy-eval`` JSONL prompt files that `asyppo.data.load_prompts` reads.
Assets live under ``cache_dir/toy-<hash of the settings>/``, so changing a setting never reuses
a stale model, and each is written to a temporary directory and renamed into place, so a run
killed mid-build leaves nothing half-written behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from asyppo.cache import materialise
from asyppo.models.loading import quiet_transformers
from asyppo.toy.model import (
    ACTOR_SIZE,
    CRITIC_SIZE,
    ToyModelSize,
    build_toy_model,
    count_parameters,
)
from asyppo.toy.task import ArithmeticTask, task_splits, write_jsonl
from asyppo.toy.tokenizer import build_toy_tokenizer
from asyppo.toy.warmstart import WarmStartSettings, warm_start

logger = logging.getLogger(__name__)

BUILTIN_NAMES = (
    "toy-actor", "toy-critic", "toy-train", "toy-eval", "chain-actor", "chain-train", "chain-eval",
    "word-problems-train", "word-problems-eval",
)
# Bump when the way assets are built changes, so caches built by older code are not reused.
_FORMAT_VERSION = 2


@dataclass(frozen=True)
class ToySettings:
    """Everything the toy assets depend on (their cache key)."""

    task: ArithmeticTask = field(default_factory=ArithmeticTask)
    actor: ToyModelSize = ACTOR_SIZE
    critic: ToyModelSize = CRITIC_SIZE
    warm_start: WarmStartSettings = field(default_factory=WarmStartSettings)
    actor_seed: int = 0
    critic_seed: int = 1

    def key(self) -> str:
        """Short stable hash of the settings."""
        payload = json.dumps({"format": _FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


DEFAULT_TOY = ToySettings()


def _write_split(settings: ToySettings, split: str, path: Path) -> None:
    train, held_out = task_splits(settings.task)
    write_jsonl(train if split == "train" else held_out, path)


def build_warm_started_actor(
    out: Path,
    train: list[dict[str, str]],
    *,
    what: str,
    size: ToyModelSize,
    seed: int,
    settings: WarmStartSettings,
    **warm_start_options: Any,
) -> None:
    """Save into ``out`` a toy actor of ``size`` (toy tokenizer) warm-started on the ``train`` rows
    (`warm_start`, with ``warm_start_options``), and its report as ``warm_start.json``; ``what``
    names it in the log (e.g. "toy actor")."""
    tokenizer = build_toy_tokenizer()
    model = build_toy_model(tokenizer, size, seed=seed)
    started = time.perf_counter()
    logger.info("building the %s (%d parameters): supervised warm-start", what, count_parameters(model))
    report = warm_start(
        model, tokenizer, [r["prompt"] for r in train], [r["answer"] for r in train], settings,
        **warm_start_options,
    )
    seconds = time.perf_counter() - started
    logger.info("%s warm-started: %d steps, held-in probe accuracy %.1f%%, %.1fs",
                what, report.steps, 100 * report.probe_accuracy, seconds)
    with quiet_transformers():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    info = {**asdict(report), "seconds": round(seconds, 2), "parameters": count_parameters(model)}
    (out / "warm_start.json").write_text(json.dumps(info, indent=2) + "\n")


def _build_actor(settings: ToySettings, out: Path) -> None:
    train, _ = task_splits(settings.task)
    build_warm_started_actor(
        out, train, what="toy actor", size=settings.actor, seed=settings.actor_seed, settings=settings.warm_start
    )


def _build_critic(settings: ToySettings, out: Path) -> None:
    tokenizer = build_toy_tokenizer()
    with quiet_transformers():
        build_toy_model(tokenizer, settings.critic, seed=settings.critic_seed).save_pretrained(out)
        tokenizer.save_pretrained(out)


def resolve_builtin(
    uri: str, cache_dir: str | Path, *, settings: ToySettings = DEFAULT_TOY
) -> Path:
    """Local path of the ``builtin:`` asset ``uri``, building and caching it on first use.

    ``uri`` is one of ``builtin:toy-actor`` (warm-started actor dir, ~15-30 s to build on 2 CPU
    cores the first time), ``builtin:toy-critic`` (critic backbone dir), ``builtin:toy-train``
    and ``builtin:toy-eval`` (JSONL files); ``builtin:chain-*`` the multi-step chain task's
    (`asyppo.toy.chain_builtin`, its own settings); ``builtin:word-problems-train`` / ``-eval``
    arithmetic word problems for small pretrained chat models (`asyppo.data.word_problems`).
    ValueError for any other name.
    """
    name = uri.removeprefix("builtin:")
    if not uri.startswith("builtin:") or name not in BUILTIN_NAMES:
        valid = ", ".join(f"builtin:{n}" for n in BUILTIN_NAMES)
        raise ValueError(f"unknown builtin asset {uri!r}; valid: {valid}")
    if name.startswith("chain-"):
        from asyppo.toy.chain_builtin import resolve_chain

        return resolve_chain(name, cache_dir)
    if name.startswith("word-problems-"):
        from asyppo.data.word_problems import resolve_word_problems

        return resolve_word_problems(name.removeprefix("word-problems-"), cache_dir)
    root = Path(cache_dir).expanduser() / f"toy-{settings.key()}"
    if name == "toy-actor":
        return materialise(root / "actor", lambda out: _build_actor(settings, out))
    if name == "toy-critic":
        return materialise(root / "critic", lambda out: _build_critic(settings, out))
    split = name.removeprefix("toy-")
    return materialise(root / f"{split}.jsonl", lambda out: _write_split(settings, split, out))
