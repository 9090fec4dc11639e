"""The rollout engine interface: prompts in, packed sampled responses out.

Every generator returns the packed layout of ``docs/architecture.md``: one flat int64 array of the
response tokens of all N = n_prompts * n sequences plus ``offsets`` ``[N+1]``; sequence ``i`` answers
prompt ``i // n``. Behaviour log-probs are returned when the generator has them cheaply; the trainer
recomputes old log-probs with the actor before every update either way (docs/algorithm.md, steps 1 and 8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from asyppo.engine import offsets_from_lengths


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature == 0`` means greedy; ``top_k == 0`` and ``top_p == 1`` disable them.

    ``stop``: strings that end a response at their first occurrence in its text (special tokens
    left out, as vLLM matches them), like EOS: the response keeps every token up to and including
    the one that completes the string, and counts as finished.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    n: int = 1
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if isinstance(self.stop, str) or "" in self.stop:
            raise ValueError(f"stop must be a tuple of non-empty strings, got {self.stop!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class GenerationOutput:
    """Packed responses.

    ``token_ids`` int64 ``[T]``; ``offsets`` int64 ``[N+1]``; ``prompt_index`` int64 ``[N]`` (which
    input prompt each response answers); ``finished`` bool ``[N]`` (ended with EOS or a stop
    string rather than the length limit); ``log_probs`` float32 ``[T]`` behaviour log-probs, or None.
    """

    token_ids: np.ndarray
    offsets: np.ndarray
    prompt_index: np.ndarray
    finished: np.ndarray
    log_probs: np.ndarray | None = None

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def response(self, i: int) -> np.ndarray:
        return self.token_ids[self.offsets[i] : self.offsets[i + 1]]


class Generator(Protocol):
    """What the rollout role needs from a generation backend."""

    def generate(
        self, prompts_token_ids: Sequence[Sequence[int]], sampling: SamplingParams
    ) -> GenerationOutput: ...

    def sync_weights(self, source: Any) -> bool:
        """Load the actor's weights (an ``nn.Module`` or a state dict). True when the generator's
        model now aliases those tensors (later values written into them need no new call)."""
        ...


def pack_responses(
    responses: np.ndarray, eos_token_id: int | Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut generations ``[N, L]`` at (and including) the first EOS and pack them.

    Returns ``(token_ids [T], offsets [N+1], finished [N])``. A row without EOS keeps all L tokens
    (HF writes padding only after a row's EOS). Vectorised: no loop over tokens.
    """
    width = responses.shape[1]
    eos_ids = np.asarray([] if eos_token_id is None else np.atleast_1d(eos_token_id), dtype=np.int64)
    is_eos = np.isin(responses, eos_ids)
    finished = is_eos.any(axis=1)
    lengths = np.where(finished, is_eos.argmax(axis=1) + 1, width)
    keep = np.arange(width)[None, :] < lengths[:, None]
    offsets = offsets_from_lengths(lengths)
    return responses[keep].astype(np.int64, copy=False), offsets, np.asarray(finished, dtype=bool)
