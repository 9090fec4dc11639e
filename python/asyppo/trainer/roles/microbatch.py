"""Shared by the model roles: a no-grad pass over a whole batch, micro-batch by micro-batch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from asyppo.engine import TrajectoryBuffer
from asyppo.trainer.model_input import ModelInput, model_input


def packed_outputs(
    batch: TrajectoryBuffer,
    score: Callable[[ModelInput], torch.Tensor],
    *,
    max_tokens: int,
    pad_token_id: int,
    device: str,
) -> np.ndarray:
    """float32 ``[T]``: ``score``'s ``[B, R]`` output for every response token, packed like ``batch``.

    Micro-batches are ``batch.microbatch_indices(max_tokens, padded=False)`` (prompt + response
    tokens summed, the same split the updates use), so none exceeds ``max_tokens`` unless a single
    sequence does; ``batch.token_index`` puts each one's tokens back in packed order.
    """
    out = np.zeros(batch.n_tokens, dtype=np.float32)
    for index in batch.microbatch_indices(max_tokens, padded=False):
        x = model_input(batch.select(index), pad_token_id, device)
        out[batch.token_index(index)] = x.to_packed(score(x).cpu()).numpy()
    return out
