"""Padded ``[B, L]`` tensors with a response mask <-> the engine's packed ragged layout.

verl and TRL keep per-token data as ``[B, L]`` tensors and a mask that is 1 on the tokens the
loss sees. The engine (``docs/data_engine.md``) works on packed batches: row ``b``'s masked tokens,
in order, are one sequence. :class:`Packing` holds that correspondence for one mask and moves
tensors both ways with whole-tensor index operations (no Python loop over rows or tokens).

A mask need not be a prefix of the row: multi-turn rollouts leave observation tokens (mask 0)
between the model's turns. Those tokens are simply not part of the packed sequence, so a scan
such as GAE runs over the model's tokens only, as verl's loops over ``t`` do when they carry the
running value across masked positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Packing:
    """The packed layout of a ``[B, L]`` mask.

    Attributes:
        mask: bool ``[B, L]`` on the CPU.
        index: int64 ``[T]``; the flat (row-major) positions of the masked tokens, in order.
        offsets: int64 ``[B+1]``; row ``b``'s masked tokens are packed at
            ``[offsets[b], offsets[b+1])``.
        prefix: every row's masked tokens are its first ones (no gaps, as in single-turn data).
    """

    mask: torch.Tensor
    index: torch.Tensor
    offsets: torch.Tensor
    prefix: bool

    @classmethod
    def of(cls, response_mask: torch.Tensor) -> Packing:
        """The packing of ``response_mask`` (``[B, L]``; bool or numbers, nonzero = masked in).

        ``prefix`` is checked in O(B): masked positions increase within a row, so a row of ``n``
        masked tokens is a prefix exactly when the first is column 0 and the last column ``n-1``.
        """
        if not isinstance(response_mask, torch.Tensor) or response_mask.dim() != 2:
            shape = tuple(getattr(response_mask, "shape", ()))
            raise ValueError(f"response_mask: expected a [B, L] tensor, got shape {shape}")
        mask = response_mask.detach().to("cpu")
        mask = (mask if mask.dtype == torch.bool else mask != 0).contiguous()
        rows, cols = mask.shape
        index = mask.view(-1).nonzero().squeeze(1)
        lengths = torch.from_numpy(np.count_nonzero(mask.numpy(), axis=1).astype(np.int64))
        offsets = torch.zeros(rows + 1, dtype=torch.int64)
        torch.cumsum(lengths, dim=0, out=offsets[1:])
        filled = lengths > 0
        row_start = torch.arange(rows, dtype=torch.int64)[filled] * cols
        first, last = index[offsets[:-1][filled]], index[offsets[1:][filled] - 1]
        prefix = bool(
            torch.equal(first, row_start) and torch.equal(last, row_start + lengths[filled] - 1)
        )
        return cls(mask, index, offsets, prefix)

    @property
    def n_tokens(self) -> int:
        """``T``, the number of masked tokens."""
        return int(self.index.shape[0])

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., B, L]`` -> ``[..., T]``: the masked entries of ``x`` (CPU), row by row."""
        flat = x.detach().to("cpu").reshape(*x.shape[:-2], -1)
        return flat.index_select(-1, self.index)

    def scatter(self, packed: torch.Tensor) -> torch.Tensor:
        """``[T]`` -> ``[B, L]``: ``packed`` at the masked positions, 0 (False) elsewhere."""
        out = packed.new_zeros(self.mask.numel())
        out.index_copy_(0, self.index, packed)
        return out.view(self.mask.shape)

    def carry_back(self, packed: torch.Tensor) -> torch.Tensor:
        """``[T]`` -> ``[B, L]``: every position takes the value of the next masked token of its
        row (itself when masked), 0 after the row's last masked token.

        This is what a backward scan that leaves its running value unchanged at masked-out
        positions produces there (verl's GAE). For prefix masks it is :meth:`scatter`; otherwise
        the next masked token of position ``(b, j)`` is packed at ``offsets[b] + (masked tokens
        before column j in row b)``, if that is still in row ``b``.
        """
        if self.prefix or packed.numel() == 0:
            return self.scatter(packed)
        counts = self.mask.to(torch.int64)
        before = torch.cumsum(counts, dim=1) - counts
        inside = before < counts.sum(dim=1, keepdim=True)
        gathered = packed[(self.offsets[:-1, None] + before).clamp(max=packed.numel() - 1)]
        return torch.where(inside, gathered, packed.new_zeros(()))
