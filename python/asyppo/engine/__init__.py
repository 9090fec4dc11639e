"""asyppo.engine: the Rust data engine's public facade (packed ragged batches, zero-copy).

Framework-agnostic: every function takes numpy arrays or CPU torch tensors and returns the same
kind, sharing memory where dtype and layout allow. Importing it imports numpy only. See
``docs/data_engine.md`` for the formulas, shapes, dtypes, errors and an embedding example.
"""

from __future__ import annotations

from asyppo.engine.arena import SharedArena
from asyppo.engine.buffer import TrajectoryBuffer, offsets_from_lengths
from asyppo.engine.kernels import (
    aggregate_values,
    balanced_partition,
    broadcast_to_tokens,
    gae,
    group_advantages,
    masked_whiten,
    pack_microbatches,
    percentile_masks,
    shard_groups,
)

__all__ = [
    "SharedArena",
    "TrajectoryBuffer",
    "aggregate_values",
    "balanced_partition",
    "broadcast_to_tokens",
    "gae",
    "group_advantages",
    "masked_whiten",
    "offsets_from_lengths",
    "pack_microbatches",
    "percentile_masks",
    "shard_groups",
]
