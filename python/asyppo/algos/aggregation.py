"""Token aggregation: turning a ``[B, L]`` per-token loss into the scalar that is backpropagated.

Every mode divides by counts of the **whole mini-batch** (carried by :class:`LossNormalizer`),
never of the micro-batch at hand. Each micro-batch's loss is therefore its exact share of the
mini-batch loss, and calling ``backward()`` on every micro-batch's loss as returned (summing the
gradients, *not* averaging them over micro-batches) gives the same gradient as one pass over the
mini-batch (docs/algorithm.md, step 8).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import torch

if TYPE_CHECKING:
    from asyppo.algos.config import AlgoConfig

LossAgg = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
LOSS_AGG_MODES: tuple[str, ...] = get_args(LossAgg)


@dataclass(frozen=True)
class LossNormalizer:
    """Global counts of a mini-batch used to aggregate each of its micro-batches.

    Attributes:
        mode: ``token-mean``, ``seq-mean-token-mean`` or ``seq-mean-token-sum-norm``.
        global_tokens: valid (mask > 0) tokens in the whole mini-batch.
        global_sequences: sequences (rows with at least one valid token) in the mini-batch.
        constant: the fixed per-sequence denominator of ``seq-mean-token-sum-norm``
            (Dr. GRPO's maximum response length); unused by the other modes.

    Raises:
        ValueError: unknown mode, non-positive counts, or a missing/non-positive constant for
            ``seq-mean-token-sum-norm``.
    """

    mode: str
    global_tokens: int
    global_sequences: int
    constant: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in LOSS_AGG_MODES:
            raise ValueError(
                f"LossNormalizer mode {self.mode!r} is unknown; valid: {', '.join(LOSS_AGG_MODES)}"
            )
        if self.global_tokens <= 0:
            raise ValueError(f"global_tokens must be > 0, got {self.global_tokens}")
        if self.global_sequences <= 0:
            raise ValueError(f"global_sequences must be > 0, got {self.global_sequences}")
        if self.mode == "seq-mean-token-sum-norm" and (self.constant is None or self.constant <= 0):
            raise ValueError(
                "seq-mean-token-sum-norm needs a positive constant (e.g. the maximum response "
                f"length), got constant={self.constant}"
            )

    @classmethod
    def from_masks(
        cls,
        masks: Iterable[torch.Tensor],
        cfg: AlgoConfig,
        *,
        max_response_length: int | None = None,
    ) -> LossNormalizer:
        """Normaliser of a mini-batch given the ``[B_i, L_i]`` masks of all its micro-batches.

        ``constant`` is ``cfg.loss_agg_constant``, or ``max_response_length`` when that is None.
        """
        tokens = 0
        sequences = 0
        for mask in masks:
            valid = mask > 0
            tokens += int(valid.sum())
            sequences += int(valid.any(dim=-1).sum())
        constant = cfg.loss_agg_constant
        if constant is None and max_response_length is not None:
            constant = float(max_response_length)
        return cls(cfg.loss_agg, tokens, sequences, constant)


def aggregate_loss(
    loss: torch.Tensor, mask: torch.Tensor, normalizer: LossNormalizer
) -> torch.Tensor:
    """Scalar share of this micro-batch in the mini-batch loss.

    With m_bt = 1[mask_bt > 0], n_b = Σ_t m_bt, S = normalizer.global_sequences,
    N = normalizer.global_tokens, C = normalizer.constant:

    * ``token-mean``:               Σ_bt m_bt ℓ_bt / N
      (DAPO, arXiv 2503.14476 §3.3; AsyPPO eq. 5's 1/|O|)
    * ``seq-mean-token-mean``:      Σ_b (Σ_t m_bt ℓ_bt / n_b) / S      (GRPO, arXiv 2402.03300)
    * ``seq-mean-token-sum-norm``:  Σ_b (Σ_t m_bt ℓ_bt / C) / S         (Dr. GRPO, arXiv 2503.20783)

    Args:
        loss: ``[B, L]`` float per-token loss; values at padding are ignored (may be anything
            finite; use ``torch.where`` upstream if they can be inf/NaN).
        mask: ``[B, L]`` float or bool, > 0 on valid response tokens.
        normalizer: global counts of the mini-batch.

    Returns:
        0-d tensor of ``loss.dtype``.
    """
    if loss.shape != mask.shape or loss.dim() != 2:
        raise ValueError(
            f"loss and mask must both be [B, L]; got loss {tuple(loss.shape)}, "
            f"mask {tuple(mask.shape)}"
        )
    valid = mask > 0
    masked = torch.where(valid, loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
    if normalizer.mode == "token-mean":
        return masked.sum() / normalizer.global_tokens
    per_seq_sum = masked.sum(dim=-1)
    if normalizer.mode == "seq-mean-token-mean":
        per_seq = per_seq_sum / valid.sum(dim=-1).clamp(min=1)
    else:
        assert normalizer.constant is not None  # checked in LossNormalizer.__post_init__
        per_seq = per_seq_sum / normalizer.constant
    return per_seq.sum() / normalizer.global_sequences


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over entries where ``mask > 0`` (0 when there are none); for metrics."""
    valid = mask > 0
    total = torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum()
    return total / valid.sum().clamp(min=1)
