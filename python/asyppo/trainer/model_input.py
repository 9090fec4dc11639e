"""Model input for the trainer's forward passes over a rollout ``engine.TrajectoryBuffer``.

A selection of sequences becomes a :class:`ModelInput` in the buffer's ``prompt_side="left"``
layout: prompts left-padded to a common width P and responses right-padded to width R, so that
every response starts at column P. The logits (or values) that score response token j of every
row then sit in the one contiguous slice ``[P-1+j]`` of the sequence axis: no per-row gather, and
the LM head can skip the prompt (``logits_to_keep``). Position ids count only real tokens, so left
padding does not shift them. :func:`micro_batches` splits a batch so that each such input stays
within a token budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import torch

from asyppo.engine import TrajectoryBuffer

#: The buffer layout of every model input the trainer builds.
LAYOUT: Final = "left"


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


def model_input(batch: TrajectoryBuffer, pad_token_id: int, device: torch.device | str = "cpu") -> ModelInput:
    """All of ``batch`` as prompt-left-padded, response-right-padded rows (see module doc).

    Raises ``ValueError`` for an empty batch or a sequence with an empty prompt (its first
    response token would have no position to be predicted from).
    """
    if len(batch) == 0:
        raise ValueError("model_input: the batch holds no sequences")
    prompt_lengths = batch.prompt_lengths
    if (prompt_lengths == 0).any():
        raise ValueError(f"model_input: sequence {int(np.argmin(prompt_lengths))} has an empty prompt")
    padded = batch.to_padded(pad_token_id, fields=[], prompt_side=LAYOUT)
    width_p = int(prompt_lengths.max())
    response_mask = padded["response_mask"][:, width_p:] > 0
    labels = np.where(response_mask, padded["input_ids"][:, width_p:], 0)
    return ModelInput(
        input_ids=torch.from_numpy(padded["input_ids"]).to(device),
        attention_mask=torch.from_numpy(padded["attention_mask"]).to(device),
        position_ids=torch.from_numpy(padded["position_ids"]).to(device),
        response_mask=torch.from_numpy(response_mask),
        labels=torch.from_numpy(labels).to(device),
        prompt_width=width_p,
    )


def placeholder_input(pad_token_id: int, device: torch.device | str = "cpu") -> ModelInput:
    """One sequence of a one-token prompt and a one-token response, both ``pad_token_id``: the
    input of a pass whose output is unused, run by a data-parallel worker with nothing left to do
    while the others still run collective forward passes (ZeRO)."""
    placeholder = TrajectoryBuffer()
    placeholder.append([pad_token_id], [pad_token_id], group_id=0, reward=0.0)
    return model_input(placeholder, pad_token_id, device)


def micro_batches(batch: TrajectoryBuffer, max_tokens: int) -> list[np.ndarray]:
    """Sequence indices of ``batch``'s micro-batches: each one's :func:`model_input` is
    ``[B, P + R]`` with ``B * (P + R) <= max_tokens`` (longest prompt P, longest response R)
    unless a single sequence is larger (``TrajectoryBuffer.microbatch_indices``, padded)."""
    return batch.microbatch_indices(max_tokens, padded=True, prompt_side=LAYOUT)
