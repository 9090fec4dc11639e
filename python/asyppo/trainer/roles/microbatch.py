"""Shared by the model roles: a no-grad pass over a whole batch, micro-batch by micro-batch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from asyppo.engine import TrajectoryBuffer
from asyppo.trainer.model_input import ModelInput, model_inputs, placeholder_input


def packed_outputs(
    batch: TrajectoryBuffer,
    score: Callable[[ModelInput], torch.Tensor],
    *,
    max_tokens: int,
    pad_token_id: int,
    device: str,
    lockstep: Callable[[int], int] | None = None,
    reuse_prompts: bool = False,
) -> np.ndarray:
    """float32 ``[T]``: ``score``'s ``[B, R]`` output for every response token, packed like ``batch``.

    Micro-batches come from :func:`model_inputs` (the same split the updates use), so no model
    input exceeds ``max_tokens`` cells unless a single sequence does; ``batch.token_index`` puts
    each one's tokens back in packed order. ``lockstep`` (data-parallel workers under ZeRO, whose
    forward passes are collective): how many passes to run given this worker's count; the extra
    ones score a :func:`placeholder_input` and are dropped.

    ``reuse_prompts`` (prompt-prefix reuse, :func:`model_inputs`): ``score`` may get inputs with
    shared prompts (it must then handle ``x.shared``, e.g. with ``prefix_outputs``), each
    counting its ``forward_passes`` towards ``lockstep``.
    """
    out = np.zeros(batch.n_tokens, dtype=np.float32)
    passes = 0
    for index, _, x in model_inputs(batch, max_tokens, pad_token_id, device, reuse_prompts=reuse_prompts):
        out[batch.token_index(index)] = x.to_packed(score(x).cpu()).numpy()
        passes += x.forward_passes
    for _ in range((lockstep(passes) if lockstep else passes) - passes):
        score(placeholder_input(pad_token_id, device))
    return out
