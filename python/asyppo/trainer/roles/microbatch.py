"""Shared by the model roles: split a selection of sequences into token-budgeted micro-batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from asyppo import engine
from asyppo.trainer.batch import ModelInput, SequenceBatch, model_input


def micro_batches(
    batch: SequenceBatch,
    index: np.ndarray,
    max_tokens: int,
    pad_token_id: int,
    device: str,
) -> Iterator[tuple[ModelInput, np.ndarray]]:
    """Yield ``(model input, flat response-token positions in batch)`` per micro-batch of ``index``.

    Micro-batches come from ``engine.pack_microbatches`` over prompt + response lengths, so none
    exceeds ``max_tokens`` unless a single sequence does.
    """
    index = np.asarray(index, dtype=np.int64)
    for part in engine.pack_microbatches(batch.total_lengths[index], max_tokens):
        chosen = index[np.asarray(part, dtype=np.int64)]
        yield model_input(batch.select(chosen), pad_token_id, device), batch.token_positions(chosen)
