"""Left-padded prompts that begin alike, run with their common beginning computed once.

Few-shot and chat prompts share a long beginning (a system prompt, worked examples) and differ
only in the question at their end. :func:`common_prefix_length` finds how many leading real tokens
every prompt of a batch shares, and :func:`prompt_pass` runs that prefix once (batch 1), repeats
its KV cache to the prompts and runs only each prompt's remaining tokens on it.

The KV cache this leaves is in a different column order from the left-padded input: the shared
prefix first, then each row's left-padded remainder (``[C | P - C]``), with the matching attention
mask. Attention only needs the mask and causal order: every key's position is already in its
rotary (or absolute) embedding, set by ``position_ids``, so a later pass that gives this mask for
the cached columns attends exactly as over the left-padded prompt, to float rounding. Under
autograd the repeat is an index, so every row's gradient flows back into the one prefix pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import Cache, PreTrainedModel

from asyppo.models.loading import forward_with_cache

#: ``forward(input_ids [B, L], attention_mask [B, C + L], position_ids [B, L], cache, keep)`` ->
#: (outputs of the last ``keep`` positions ``[B, keep, ...]``, the KV cache of the C + L tokens):
#: one model pass continuing ``cache`` (None: C = 0).
CachedForward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any, int], tuple[torch.Tensor, Any]]


def cached_logits(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    cache: Cache | None,
    keep: int,
) -> tuple[torch.Tensor, Cache]:
    """A causal LM as a :data:`CachedForward`: logits of the last ``keep`` positions (the LM head
    runs on those only) and the KV cache extended by ``input_ids``."""
    out, extended = forward_with_cache(
        model, cache, input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
        logits_to_keep=keep,
    )
    return out.logits, extended


def common_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """How many leading real tokens every row of left-padded ``input_ids`` ``[U, P]`` shares,
    capped so that each row keeps at least one token of its own (0 for fewer than two rows)."""
    if len(input_ids) < 2:
        return 0
    width = input_ids.shape[1]
    lengths = attention_mask.sum(dim=1)
    shortest = int(lengths.min())
    if shortest < 2:
        return 0
    columns = (width - lengths)[:, None] + torch.arange(shortest - 1, device=input_ids.device)
    leading = input_ids.gather(1, columns)
    agree = (leading == leading[:1]).all(dim=0)
    return int(agree.int().cumprod(dim=0).sum())


def prompt_pass(
    forward: CachedForward,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    keep: int,
    *,
    prefix: int,
) -> tuple[torch.Tensor, Any, torch.Tensor]:
    """Run left-padded prompts ``[U, P]`` whose first ``prefix`` real tokens are the same in every
    row (:func:`common_prefix_length`; 0: one plain pass).

    Returns (``forward``'s outputs of the last ``keep`` columns ``[U, keep, ...]``, the KV cache of
    the P prompt columns in the order ``[prefix | left-padded remainder]``, and int64 ``[U, P]``,
    the attention mask of that cache's columns). The prefix runs once at positions
    ``0..prefix-1``; each row's remainder (its last ``length - prefix`` tokens, right-aligned in
    the last ``P - prefix`` columns, the other columns of that window masked) continues the
    repeated cache with the row's own position ids. ``keep`` must not exceed ``P - prefix``.
    """
    if prefix == 0:
        out, cache = forward(input_ids, attention_mask, position_ids, None, keep)
        return out, cache, attention_mask
    rows, width = input_ids.shape
    device = input_ids.device
    start = width - int(attention_mask[0].sum())
    prefix_ids = input_ids[:1, start : start + prefix]
    ones = torch.ones((1, prefix), dtype=attention_mask.dtype, device=device)
    _, cache = forward(prefix_ids, ones, torch.arange(prefix, device=device)[None], None, 1)
    cache.batch_select_indices(torch.zeros(rows, dtype=torch.int64, device=device))
    window = width - prefix
    own = torch.arange(window, device=device)[None] >= (width - attention_mask.sum(dim=1, keepdim=True))
    mask = torch.cat([ones.expand(rows, prefix), own.to(attention_mask.dtype)], dim=1)
    out, cache = forward(input_ids[:, prefix:], mask, position_ids[:, prefix:], cache, keep)
    return out, cache, mask
