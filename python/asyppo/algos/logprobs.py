"""Token log-probabilities and entropies from logits, without a second full-size float32 copy.

A 150k-token vocabulary over a batch of long responses makes the logits the largest tensor of
the actor step (``B·L·V``; 8 × 8k × 150k in bf16 is ~20 GB). ``log_softmax(logits.float())``
would add a float32 copy twice that size, and autograd would keep it for backward. Both
functions here walk the sequence in chunks of ``chunk_size`` positions: the float32 temporaries
are at most ``B · chunk_size · V``, and when gradients are needed each chunk is wrapped in
activation checkpointing, so backward recomputes the chunk's softmax instead of storing it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

DEFAULT_CHUNK_SIZE = 512


def _scaled(logits: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, logsumexp_v x) for x = logits / τ in float32 — one chunk's worth."""
    x = logits.float() / temperature
    return x, torch.logsumexp(x, dim=-1)


def _picked(x: torch.Tensor, lse: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    picked = x.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) - lse
    return torch.where(labels >= 0, picked, torch.zeros((), dtype=picked.dtype))


def _entropy_of(x: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    # H = lse − Σ_v p_v x_v with p = exp(x − lse): no separate log_softmax tensor.
    return lse - (torch.exp(x - lse.unsqueeze(-1)) * x).sum(dim=-1)


def _label_log_probs(
    logits: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    x, lse = _scaled(logits, temperature)
    return _picked(x, lse, labels)


def _entropy(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    x, lse = _scaled(logits, temperature)
    return _entropy_of(x, lse)


def _both(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    x, lse = _scaled(logits, temperature)
    return torch.stack((_picked(x, lse, labels), _entropy_of(x, lse)))


def _chunked(
    fn: Callable[..., torch.Tensor],
    logits: torch.Tensor,
    *extra: torch.Tensor,
    chunk_size: int,
    temperature: float,
) -> torch.Tensor:
    if logits.dim() < 2:
        raise ValueError(f"logits must be [..., L, V]; got shape {tuple(logits.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    track = torch.is_grad_enabled() and logits.requires_grad
    seq_len = logits.shape[-2]
    pieces = []
    # max(..., 1): an empty sequence still makes one (empty) call, so outputs keep their shape.
    for start in range(0, max(seq_len, 1), chunk_size):
        stop = min(start + chunk_size, seq_len)
        args = (logits[..., start:stop, :], *(e[..., start:stop] for e in extra), temperature)
        pieces.append(checkpoint(fn, *args, use_reentrant=False) if track else fn(*args))
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-1)


def _checked_labels(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} must equal logits shape without the vocab "
            f"dim {tuple(logits.shape[:-1])}"
        )
    if labels.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    return labels.long()


def token_log_probs(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    temperature: float = 1.0,
) -> torch.Tensor:
    """log π(labels_t | ·) = x_t[labels_t] − logsumexp_v x_t[v], x = logits / τ, in float32.

    Args:
        logits: ``[..., L, V]`` (any float dtype; computed in float32 chunk by chunk). Must
            already be aligned with ``labels`` (for a causal LM: logits at position t score
            the token at t + 1, so pass ``logits[:, :-1]`` with ``input_ids[:, 1:]``).
        labels: ``[..., L]`` int64 token ids in ``[0, V)``; negative ids (HF's ``-100``
            padding) give 0.
        chunk_size: sequence positions per chunk.
        temperature: τ > 0, the sampling temperature; applied chunk by chunk, so no scaled
            full-size copy of ``logits`` is made (``logits / τ`` beforehand would make one).

    Returns:
        float32 ``[..., L]``; differentiable w.r.t. ``logits``.
    """
    return _chunked(
        _label_log_probs,
        logits,
        _checked_labels(logits, labels),
        chunk_size=chunk_size,
        temperature=temperature,
    )


def entropy_from_logits(
    logits: torch.Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE, *, temperature: float = 1.0
) -> torch.Tensor:
    """Entropy of the next-token distribution: H_t = −Σ_v p_tv log p_tv, p = softmax(logits_t / τ).

    Computed as ``logsumexp(x) − Σ_v softmax(x)_v x_v`` in float32, ``chunk_size`` sequence
    positions at a time (see the module docstring for the memory bound).

    Args:
        logits: ``[..., L, V]`` any float dtype.
        chunk_size: sequence positions per chunk.
        temperature: τ > 0, applied chunk by chunk (see :func:`token_log_probs`).

    Returns:
        float32 ``[..., L]``; differentiable w.r.t. ``logits`` (needed for the entropy bonus).
    """
    return _chunked(_entropy, logits, chunk_size=chunk_size, temperature=temperature)


def token_log_probs_and_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(token_log_probs(...), entropy_from_logits(...))`` in one pass over the logits.

    Each chunk's logsumexp is shared by both outputs, which saves one of the two passes over the
    ``B·L·V`` logits (and its recomputation in backward) when the entropy bonus is on.
    Arguments and memory bound as in :func:`token_log_probs`.

    Returns:
        (log_probs, entropy), float32 ``[..., L]`` each.
    """
    both = _chunked(
        _both,
        logits,
        _checked_labels(logits, labels),
        chunk_size=chunk_size,
        temperature=temperature,
    )
    return both[0], both[1]
