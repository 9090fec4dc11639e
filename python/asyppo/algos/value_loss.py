"""Critic loss: squared error to the GAE returns, optionally clipped around the old values."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from asyppo.algos.aggregation import LossNormalizer, aggregate_loss, masked_mean

if TYPE_CHECKING:
    from asyppo.algos.config import AlgoConfig


def compute_value_loss(
    values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    old_values: torch.Tensor | None,
    cfg: AlgoConfig,
    *,
    normalizer: LossNormalizer,
) -> tuple[torch.Tensor, dict[str, float]]:
    """This micro-batch's share of one critic's value loss, and its metrics.

    ℓ_t = ½ (V_t − R_t)², or with ``cfg.value_clip`` = ε_v and old values V^old:
    ℓ_t = ½ max((V_t − R_t)², (V^old_t + clip(V_t − V^old_t, −ε_v, ε_v) − R_t)²),
    aggregated with ``normalizer`` (:func:`~asyppo.algos.aggregation.aggregate_loss`).

    Sources: PPO value loss (Schulman et al. 2017, arXiv 1707.06347 eq. 9); value clipping as in
    OpenAI baselines' PPO2. AsyPPO (arXiv 2510.01656, Alg. 1) trains critic m on the tokens of
    its own shard only: pass that shard's ``mask`` (and a normaliser counted on the shard).

    Args:
        values: ``[B, L]`` float, this critic's current V_m(s_t) (with grad).
        returns: ``[B, L]`` float, R_t (no grad).
        mask: ``[B, L]`` float or bool, > 0 on tokens this critic trains on.
        old_values: ``[B, L]`` float V_m at rollout time; required when ``value_clip`` is set.
        cfg: reads ``value_clip``.
        normalizer: global counts of the critic's mini-batch.

    Returns:
        (loss, metrics) with ``critic/loss``, ``critic/value_mean``, ``critic/return_mean``,
        ``critic/abs_error`` and, when clipping, ``critic/clip_frac``.

    Raises:
        ValueError: shape mismatch, or ``value_clip`` set without ``old_values``.
    """
    for name, tensor in (("returns", returns), ("mask", mask), ("old_values", old_values)):
        if tensor is not None and tensor.shape != values.shape:
            raise ValueError(
                f"{name} has shape {tuple(tensor.shape)}, expected {tuple(values.shape)} "
                "like values"
            )
    valid = mask > 0
    zero = torch.zeros((), dtype=values.dtype)
    # Zero padding first so garbage there cannot turn a masked-out term into NaN.
    values = torch.where(valid, values, zero)
    returns = torch.where(valid, returns, zero)
    error = (values - returns) ** 2
    metrics: dict[str, float] = {}
    if cfg.value_clip is not None:
        if old_values is None:
            raise ValueError(f"value_clip={cfg.value_clip} needs old_values")
        old = torch.where(valid, old_values, zero)
        clipped_values = old + torch.clamp(values - old, -cfg.value_clip, cfg.value_clip)
        clipped_error = (clipped_values - returns) ** 2
        with torch.no_grad():
            metrics["critic/clip_frac"] = float(masked_mean((clipped_error > error).float(), mask))
        error = torch.maximum(error, clipped_error)
    loss = aggregate_loss(0.5 * error, mask, normalizer)
    with torch.no_grad():
        metrics["critic/loss"] = float(loss)
        metrics["critic/value_mean"] = float(masked_mean(values, mask))
        metrics["critic/return_mean"] = float(masked_mean(returns, mask))
        metrics["critic/abs_error"] = float(masked_mean((values - returns).abs(), mask))
    return loss, metrics
