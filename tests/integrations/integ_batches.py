"""Random padded batches as verl holds them: ``[B, L]`` tensors and a response mask.

Row lengths always include 0 (empty response), 1, and L (full row); ``layout="prefix"`` masks
the first ``length`` tokens of each row (single-turn), ``"multiturn"`` also punches mask-0 gaps
(observation tokens) into the rows and may start a row with masked-out tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PaddedBatch:
    rewards: torch.Tensor  # [B, L] dense token rewards
    values: torch.Tensor  # [B, L] critic values (garbage off the mask, as in a real batch)
    mask: torch.Tensor  # [B, L] 0/1 in the batch's dtype, as verl keeps it
    index: np.ndarray  # [B] object array of uid strings, groups of 1 to 4 rows


def make_batch(seed: int, rows: int, cols: int, layout: str, dtype: torch.dtype) -> PaddedBatch:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, cols + 1, (rows,), generator=g)
    lengths[:3] = torch.tensor([0, 1, cols])[: min(3, rows)]
    mask = (torch.arange(cols)[None, :] < lengths[:, None]).to(dtype)
    if layout == "multiturn":
        gaps = torch.rand(rows, cols, generator=g) < 0.25
        mask = mask * (~gaps).to(dtype)
    elif layout != "prefix":
        raise ValueError(f"layout: expected 'prefix' or 'multiturn', got {layout!r}")
    rewards = torch.randn(rows, cols, generator=g, dtype=dtype)
    values = torch.randn(rows, cols, generator=g, dtype=dtype)
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < rows:
        sizes.append(int(rng.integers(1, 5)))
    uids = np.repeat([f"uid-{i:04d}" for i in range(len(sizes))], sizes)[:rows]
    return PaddedBatch(rewards, values, mask, rng.permutation(uids).astype(object))
