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

import torch


@dataclass(frozen=True)
class Packing:
    """The packed layout of a ``[B, L]`` mask.

    Attributes:
        mask: bool ``[B, L]`` on the CPU.
        offsets: int64 ``[B+1]``; row ``b``'s masked tokens are packed ``[offsets[b], offsets[b+1])``.
        next_index: int64 ``[B, L]``; for every position, the packed index of the first masked
            token at or after it in the same row, or ``-1`` if there is none.
    """

    mask: torch.Tensor
    offsets: torch.Tensor
    next_index: torch.Tensor

    @classmethod
    def of(cls, response_mask: torch.Tensor) -> Packing:
        """The packing of ``response_mask`` (``[B, L]``; bool or numbers, nonzero = masked in).

        ``next_index = offsets[b] + (masked tokens before the position in its row)`` where that
        count is below the row's length, else ``-1``.
        """
        if not isinstance(response_mask, torch.Tensor) or response_mask.dim() != 2:
            shape = tuple(getattr(response_mask, "shape", ()))
            raise ValueError(f"response_mask: expected a [B, L] tensor, got shape {shape}")
        mask = response_mask.detach().to("cpu") != 0
        counts = mask.to(torch.int64)
        before = torch.cumsum(counts, dim=1) - counts  # masked tokens strictly before, per row
        lengths = counts.sum(dim=1)
        offsets = torch.zeros(mask.shape[0] + 1, dtype=torch.int64)
        torch.cumsum(lengths, dim=0, out=offsets[1:])
        inside = before < lengths[:, None]
        next_index = torch.where(inside, offsets[:-1, None] + before, -1)
        return cls(mask, offsets, next_index)

    @property
    def n_tokens(self) -> int:
        """``T``, the number of masked tokens."""
        return int(self.offsets[-1])

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` -> ``[T]``: the masked entries of ``x`` (CPU), row by row."""
        return x.detach().to("cpu")[self.mask]

    def scatter(self, packed: torch.Tensor) -> torch.Tensor:
        """``[T]`` -> ``[B, L]``: ``packed`` at the masked positions, 0 elsewhere."""
        out = packed.new_zeros(self.mask.shape)
        out[self.mask] = packed
        return out

    def carry_back(self, packed: torch.Tensor) -> torch.Tensor:
        """``[T]`` -> ``[B, L]``: every position takes the value of the next masked token of its
        row (itself when masked), 0 after the row's last masked token.

        This is what a backward scan that leaves its running value unchanged at masked-out
        positions produces there (verl's GAE).
        """
        if packed.numel() == 0:
            return packed.new_zeros(self.mask.shape)
        gathered = packed[self.next_index.clamp(min=0)]
        return torch.where(self.next_index >= 0, gathered, packed.new_zeros(()))
