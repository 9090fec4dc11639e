"""``builtin:chain-*`` assets: the chain task's prompt files and its own warm-started actor.

``builtin:chain-train`` / ``builtin:chain-eval`` are JSONL prompt files of `asyppo.toy.chain`;
``builtin:chain-actor`` is the toy actor (same size and tokenizer as ``builtin:toy-actor``)
warm-started on the chain task's two-step responses until a held-in probe reaches the target
exact-match accuracy. Critics can be ``builtin:toy-critic`` (same tokenizer). Assets live under
``cache_dir/chain-<hash of ChainSettings>/`` and are built like the sums assets (temporary
directory, renamed into place; see `asyppo.toy.builtin`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from asyppo.models.loading import quiet_transformers
from asyppo.toy.chain import ChainTask, chain_splits, ideal_response
from asyppo.toy.model import ACTOR_SIZE, ToyModelSize, build_toy_model, count_parameters
from asyppo.toy.task import write_jsonl
from asyppo.toy.tokenizer import build_toy_tokenizer
from asyppo.toy.warmstart import WarmStartSettings, warm_start

logger = logging.getLogger(__name__)

CHAIN_NAMES = ("chain-actor", "chain-train", "chain-eval")
_FORMAT_VERSION = 1
#: Greedy budget of the warm-start probe: the longest ideal response, ``60+30=\\boxed{90}``, is
#: 11 tokens plus EOS.
PROBE_MAX_NEW_TOKENS = 16


def _chain_warm_start() -> WarmStartSettings:
    return WarmStartSettings(max_steps=3000, target_accuracy=0.3, eval_every=20)


@dataclass(frozen=True)
class ChainSettings:
    """Everything the chain assets depend on (their cache key)."""

    task: ChainTask = field(default_factory=ChainTask)
    actor: ToyModelSize = ACTOR_SIZE
    warm_start: WarmStartSettings = field(default_factory=_chain_warm_start)
    actor_seed: int = 0

    def key(self) -> str:
        payload = json.dumps({"format": _FORMAT_VERSION, "kind": "chain", **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


DEFAULT_CHAIN = ChainSettings()


def _write_split(settings: ChainSettings, split: str, path: Path) -> None:
    train, held_out = chain_splits(settings.task)
    write_jsonl(train if split == "train" else held_out, path)


def _build_actor(settings: ChainSettings, out: Path) -> None:
    tokenizer = build_toy_tokenizer()
    model = build_toy_model(tokenizer, settings.actor, seed=settings.actor_seed)
    train, _ = chain_splits(settings.task)
    started = time.perf_counter()
    logger.info("building the chain actor (%d parameters): supervised warm-start", count_parameters(model))
    report = warm_start(
        model, tokenizer, [r["prompt"] for r in train], [r["answer"] for r in train], settings.warm_start,
        respond=ideal_response, max_new_tokens=PROBE_MAX_NEW_TOKENS,
    )
    seconds = time.perf_counter() - started
    logger.info("chain actor warm-started: %d steps, held-in probe accuracy %.1f%%, %.1fs",
                report.steps, 100 * report.probe_accuracy, seconds)
    with quiet_transformers():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    info = {**asdict(report), "seconds": round(seconds, 2), "parameters": count_parameters(model)}
    (out / "warm_start.json").write_text(json.dumps(info, indent=2) + "\n")


def resolve_chain(name: str, cache_dir: str | Path, *, settings: ChainSettings = DEFAULT_CHAIN) -> Path:
    """Local path of ``builtin:<name>`` for a name of :data:`CHAIN_NAMES`, built on first use."""
    from asyppo.cache import materialise

    if name not in CHAIN_NAMES:
        raise ValueError(f"unknown chain asset {name!r}; valid: {', '.join(CHAIN_NAMES)}")
    root = Path(cache_dir).expanduser() / f"chain-{settings.key()}"
    if name == "chain-actor":
        return materialise(root / "actor", lambda out: _build_actor(settings, out))
    split = name.removeprefix("chain-")
    return materialise(root / f"{split}.jsonl", lambda out: _write_split(settings, split, out))
