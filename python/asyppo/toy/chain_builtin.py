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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from asyppo.toy.builtin import build_warm_started_actor
from asyppo.toy.chain import ChainTask, chain_splits, ideal_response
from asyppo.toy.model import ACTOR_SIZE, ToyModelSize
from asyppo.toy.task import write_jsonl
from asyppo.toy.warmstart import WarmStartSettings

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
    train, _ = chain_splits(settings.task)
    build_warm_started_actor(
        out, train, what="chain actor", size=settings.actor, seed=settings.actor_seed,
        settings=settings.warm_start, respond=ideal_response, max_new_tokens=PROBE_MAX_NEW_TOKENS,
    )


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
