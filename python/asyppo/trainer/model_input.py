"""The rollout batch as the trainer moves it between roles, and its model-input layout.

``SequenceBatch`` holds N (prompt, response) pairs packed (``docs/architecture.md``): per-sequence
prompt tokens ``prompt_ids``/``prompt_offsets`` and response tokens ``response_ids``/``offsets``.
Everything is numpy so any runtime backend can ship it.

For a forward pass a selection of sequences becomes a :class:`ModelInput`: prompts *left*-padded
to a common width P and responses *right*-padded to width R, so that every response starts at
column P. The logits (or values) that score response token j of every row then sit in the one
contiguous slice ``[P-1+j]`` of the sequence axis: no per-row gather, and the LM head can skip the
prompt (``logits_to_keep``). Position ids count only real tokens, so left padding does not shift them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def segment_positions(offsets: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions of segments ``index`` (in that order) and their lengths.

    ``offsets`` int64 ``[N+1]``; ``index`` int ``[K]``. Returns ``(positions [sum len], lengths [K])``,
    vectorised with ``np.repeat`` (no Python loop over segments or tokens).
    """
    index = np.asarray(index, dtype=np.int64)
    starts = offsets[index]
    lengths = offsets[index + 1] - starts
    total = int(lengths.sum())
    run_starts = offsets_from_lengths(lengths)[:-1]
    within = np.arange(total, dtype=np.int64) - np.repeat(run_starts, lengths)
    return np.repeat(starts, lengths) + within, lengths


def offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    """``[l0, l1, ...]`` -> int64 offsets ``[0, l0, l0+l1, ...]``."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


@dataclass(frozen=True)
class SequenceBatch:
    """N prompt/response pairs, packed. ``group_ids`` int64 ``[N]`` names each response's prompt."""

    prompt_ids: np.ndarray
    prompt_offsets: np.ndarray
    response_ids: np.ndarray
    offsets: np.ndarray
    group_ids: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.group_ids)
        if len(self.prompt_offsets) != n + 1 or len(self.offsets) != n + 1:
            raise ValueError(
                f"SequenceBatch: prompt_offsets and offsets must have N+1 = {n + 1} entries, got "
                f"{len(self.prompt_offsets)} and {len(self.offsets)}"
            )
        if self.offsets[-1] != len(self.response_ids) or self.prompt_offsets[-1] != len(self.prompt_ids):
            raise ValueError("SequenceBatch: offsets[-1] must equal the number of packed tokens")

    @property
    def n_sequences(self) -> int:
        return len(self.group_ids)

    @property
    def n_tokens(self) -> int:
        return len(self.response_ids)

    @property
    def response_lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def total_lengths(self) -> np.ndarray:
        """Prompt + response length per sequence (what a forward pass costs)."""
        return np.diff(self.prompt_offsets) + np.diff(self.offsets)

    def select(self, index: np.ndarray) -> SequenceBatch:
        """The sub-batch of sequences ``index`` (in that order)."""
        resp_pos, resp_len = segment_positions(self.offsets, index)
        prompt_pos, prompt_len = segment_positions(self.prompt_offsets, index)
        return SequenceBatch(
            prompt_ids=self.prompt_ids[prompt_pos],
            prompt_offsets=offsets_from_lengths(prompt_len),
            response_ids=self.response_ids[resp_pos],
            offsets=offsets_from_lengths(resp_len),
            group_ids=self.group_ids[np.asarray(index, dtype=np.int64)],
        )

    def token_positions(self, index: np.ndarray) -> np.ndarray:
        """Flat response-token positions of sequences ``index`` (to slice per-token arrays)."""
        return segment_positions(self.offsets, index)[0]


@dataclass(frozen=True)
class ModelInput:
    """Padded model input for B sequences.

    ``input_ids``/``attention_mask``/``position_ids`` int64 ``[B, P+R]``; ``response_mask`` bool
    ``[B, R]`` (True on real response tokens, row-major order = packed order); ``labels`` int64
    ``[B, R]`` (the response tokens, 0 on padding); ``prompt_width`` P.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_mask: torch.Tensor
    labels: torch.Tensor
    prompt_width: int

    @property
    def response_width(self) -> int:
        return self.labels.shape[1]

    def response_slice(self, per_position: torch.Tensor) -> torch.Tensor:
        """From ``[B, P+R, ...]`` outputs, the ``[B, R, ...]`` ones that score each response token."""
        start = self.prompt_width - 1
        return per_position[:, start : start + self.response_width]

    def to_packed(self, padded: torch.Tensor) -> torch.Tensor:
        """``[B, R]`` -> ``[T]`` in packed order."""
        return padded[self.response_mask]

    def from_packed(self, packed: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``[T]`` packed values -> ``[B, R]`` padded with zeros."""
        out = torch.zeros(self.response_mask.shape, dtype=dtype)
        out[self.response_mask] = torch.as_tensor(packed).to(dtype)
        return out


def model_input(batch: SequenceBatch, pad_token_id: int, device: torch.device | str = "cpu") -> ModelInput:
    """Lay out all of ``batch`` as prompt-left-padded, response-right-padded rows (see module doc)."""
    n = batch.n_sequences
    p_len = np.diff(batch.prompt_offsets)
    r_len = batch.response_lengths
    if n == 0:
        raise ValueError("model_input: the batch holds no sequences")
    if (p_len == 0).any():
        raise ValueError(f"model_input: sequence {int(np.argmin(p_len))} has an empty prompt")
    width_p, width_r = int(p_len.max()), max(int(r_len.max()), 1)
    ids = np.full((n, width_p + width_r), pad_token_id, dtype=np.int64)
    cols = np.arange(width_p + width_r)[None, :]
    prompt_cells = (cols >= (width_p - p_len)[:, None]) & (cols < width_p)
    response_cells = (cols >= width_p) & (cols < (width_p + r_len)[:, None])
    ids[prompt_cells] = batch.prompt_ids
    ids[response_cells] = batch.response_ids
    valid = prompt_cells | response_cells
    position = np.maximum(np.cumsum(valid, axis=1) - 1, 0)
    response_mask = response_cells[:, width_p:]
    labels = np.where(response_mask, ids[:, width_p:], 0)
    return ModelInput(
        input_ids=torch.from_numpy(ids).to(device),
        attention_mask=torch.from_numpy(valid.astype(np.int64)).to(device),
        position_ids=torch.from_numpy(position).to(device),
        response_mask=torch.from_numpy(response_mask),
        labels=torch.from_numpy(labels).to(device),
        prompt_width=width_p,
    )
