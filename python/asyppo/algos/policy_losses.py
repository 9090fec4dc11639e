"""Policy losses: PPO (clip-higher, dual clip), AsyPPO, ASPO, ASymPO and SPO, selected by name.

Every registered loss maps the ``[B, L]`` inputs to a ``[B, L]`` **per-token** loss (its own
entropy bonus included) plus its loss-specific metrics; :func:`compute_policy_loss` then
aggregates with the mini-batch's :class:`~asyppo.algos.aggregation.LossNormalizer`, adds the
KL term when ``kl_mode == "loss"``, and adds the metrics common to every loss.

Notation: m_t valid-token mask, A_t advantage, r_t = exp(log π_θ − log π_old) the importance
ratio, H_t the policy entropy, β = ``entropy_coef``, sg(·) stop-gradient.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, ConfigDict, Field

from asyppo.algos.aggregation import LossNormalizer, aggregate_loss, masked_mean
from asyppo.algos.kl import kl_estimate
from asyppo.algos.registry import Registry

if TYPE_CHECKING:
    from asyppo.algos.config import AlgoConfig

Metrics = dict[str, float]
PolicyLossFn = Callable[["PolicyLossInputs", "AlgoConfig"], tuple[torch.Tensor, Metrics]]

#: Registered policy losses. Attribute ``needs_old_log_probs`` (default True); a loss with
#: parameters of its own registers their model as ``params=`` (see :class:`AspoParams`).
POLICY_LOSSES: Registry[PolicyLossFn] = Registry("policy loss")


class AspoParams(BaseModel):
    """Parameters of ``policy_loss: aspo``: the masking range and the soft dual-clip cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aspo_eps_low: float = Field(
        0.2, ge=0.0, lt=1.0, description="ASPO: A < 0 tokens with r < 1 - ε_low get weight 0."
    )
    aspo_eps_high: float = Field(
        0.2, ge=0.0, description="ASPO: A ≥ 0 tokens with r > 1 + ε_high get weight 0."
    )
    aspo_cap: float = Field(
        3.0, gt=1.0, description="ASPO soft dual clip: the IS weight is capped at c."
    )


class AsympoParams(BaseModel):
    """Parameters of ``policy_loss: asympo``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    asympo_eps: float = Field(
        1e-6, gt=0.0, description="ASymPO: the stop-gradient mean NLL denominator is clamped at ε."
    )


class SpoParams(BaseModel):
    """Parameters of ``policy_loss: spo``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spo_neg_scale: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="SPO: fixed scale C applied to the loss of negative-advantage responses.",
    )


@dataclass(frozen=True)
class PolicyLossInputs:
    """One padded micro-batch of actor-side tensors, all ``[B, L]``.

    Attributes:
        log_probs: float, log π_θ of the sampled tokens under the current policy (with grad).
        old_log_probs: float, log π_old at sampling time (behaviour policy); None is allowed
            only for losses that do not use it (``asympo``, ``spo``).
        advantages: float, token advantages (no grad).
        mask: float or bool, > 0 on valid response tokens; padding never contributes to a
            loss or a gradient, whatever values the other tensors hold there.
        entropy: float, H[π_θ(·|s_t)] (with grad); required when ``entropy_coef > 0``.
        adv_keep: bool, I^A (False = advantage masked); None = all kept.
        ent_keep: bool, I^H (False = token filtered out of the entropy bonus); None = all kept.
        ref_log_probs: float, log π_ref; required when ``kl_coef > 0`` and ``kl_mode == "loss"``.
    """

    log_probs: torch.Tensor
    old_log_probs: torch.Tensor | None
    advantages: torch.Tensor
    mask: torch.Tensor
    entropy: torch.Tensor | None = None
    adv_keep: torch.Tensor | None = None
    ent_keep: torch.Tensor | None = None
    ref_log_probs: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.log_probs.dim() != 2:
            raise ValueError(f"log_probs must be [B, L], got shape {tuple(self.log_probs.shape)}")
        shape = self.log_probs.shape
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None and value.shape != shape:
                raise ValueError(
                    f"PolicyLossInputs.{field.name} has shape {tuple(value.shape)}, "
                    f"expected {tuple(shape)} like log_probs"
                )
        for name in ("adv_keep", "ent_keep"):
            value = getattr(self, name)
            if value is not None and value.dtype != torch.bool:
                raise TypeError(f"PolicyLossInputs.{name} must be a bool tensor, got {value.dtype}")

    def valid(self) -> torch.Tensor:
        """Bool ``[B, L]``: mask > 0."""
        return self.mask > 0

    def sanitized(self) -> PolicyLossInputs:
        """Copy with every float tensor set to 0 at padding.

        Padding may hold anything (garbage log-probs, inf): zeroing it *before* any exp/log keeps
        the masked-out branches finite, so their gradient is exactly 0 rather than 0 · inf = NaN.
        """
        valid = self.valid()
        updates = {}
        for name in ("log_probs", "old_log_probs", "advantages", "entropy", "ref_log_probs"):
            value = getattr(self, name)
            if value is not None:
                updates[name] = torch.where(valid, value, torch.zeros((), dtype=value.dtype))
        return dataclasses.replace(self, **updates)


def _frac(condition: torch.Tensor, inputs: PolicyLossInputs) -> float:
    return float(masked_mean(condition.float(), inputs.mask))


def _entropy_bonus(
    inputs: PolicyLossInputs, cfg: AlgoConfig, keep: torch.Tensor | None
) -> torch.Tensor | float:
    """β · I^H_t · H_t per token (I^H = 1 when ``keep`` is None); 0 when β = 0."""
    if cfg.entropy_coef == 0:
        return 0.0
    if inputs.entropy is None:
        raise ValueError(
            f"entropy_coef={cfg.entropy_coef} > 0 needs PolicyLossInputs.entropy "
            "(see asyppo.algos.entropy_from_logits)"
        )
    entropy = inputs.entropy if keep is None else inputs.entropy * keep
    return cfg.entropy_coef * entropy


def _require_old(inputs: PolicyLossInputs, loss: str) -> torch.Tensor:
    if inputs.old_log_probs is None:
        raise ValueError(f"policy loss {loss!r} needs PolicyLossInputs.old_log_probs")
    return inputs.old_log_probs


def _clipped_surrogate(
    inputs: PolicyLossInputs, cfg: AlgoConfig, advantages: torch.Tensor, loss: str
) -> tuple[torch.Tensor, Metrics]:
    """Per-token PPO-clip loss with clip-higher and dual clip, and its clip fractions."""
    ratio = torch.exp(inputs.log_probs - _require_old(inputs, loss))
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cfg.clip_low, 1.0 + cfg.clip_high)
    per_token = torch.maximum(unclipped, clipped)
    clip_binds = clipped > unclipped
    metrics = {
        "actor/clip_frac_low": _frac(clip_binds & (advantages < 0), inputs),
        "actor/clip_frac_high": _frac(clip_binds & (advantages > 0), inputs),
    }
    if cfg.clip_c is not None:
        dual = -advantages * cfg.clip_c
        dual_binds = (advantages < 0) & (per_token > dual)
        per_token = torch.where(dual_binds, dual, per_token)
        metrics["actor/dual_clip_frac"] = _frac(dual_binds, inputs)
    return per_token, metrics


@POLICY_LOSSES.register("ppo")
def ppo_loss(inputs: PolicyLossInputs, cfg: AlgoConfig) -> tuple[torch.Tensor, Metrics]:
    """PPO clipped surrogate with clip-higher and dual clip, plus a plain entropy bonus.

    ℓ_t = max(−A_t r_t, −A_t clip(r_t, 1 − ε_low, 1 + ε_high)) − β H_t;
    for A_t < 0 and ``clip_c`` = c: ℓ_t ← min(ℓ_t, −c A_t).

    Sources: PPO (Schulman et al. 2017, arXiv 1707.06347, eq. 7); clip-higher ε_low ≠ ε_high
    (DAPO, arXiv 2503.14476 §3.1); dual clip (Ye et al. 2020, arXiv 1912.09729 §4.1). Ignores
    ``adv_keep`` / ``ent_keep``. Shapes: ``[B, L]`` in, ``[B, L]`` out.
    """
    per_token, metrics = _clipped_surrogate(inputs, cfg, inputs.advantages, "ppo")
    return per_token - _entropy_bonus(inputs, cfg, keep=None), metrics


@POLICY_LOSSES.register("asyppo")
def asyppo_loss(inputs: PolicyLossInputs, cfg: AlgoConfig) -> tuple[torch.Tensor, Metrics]:
    """AsyPPO: PPO on masked advantages plus the critic-filtered entropy bonus.

    ℓ_t = I^A_t · max(−A_t r_t, −A_t clip(r_t, 1 − ε_low, 1 + ε_high)) − β I^H_t H_t
    (dual clip as in ``ppo``), aggregated over all valid tokens: masked tokens keep their place
    in the denominator |O| (docs/algorithm.md, step 8).

    Source: AsyPPO (arXiv 2510.01656) eq. 4 (advantage mask I^A: the k lowest critic-std
    tokens) and eq. 5 (entropy filter I^H: the h highest critic-std tokens); β = 0.01 (A.3).
    Since I^A_t ∈ {0, 1}, clipping I^A_t · A_t equals I^A_t times the clipped term (dual clip
    included). Shapes: ``[B, L]`` in, ``[B, L]`` out.
    """
    advantages = inputs.advantages
    if inputs.adv_keep is not None:
        advantages = advantages * inputs.adv_keep
    per_token, metrics = _clipped_surrogate(inputs, cfg, advantages, "asyppo")
    return per_token - _entropy_bonus(inputs, cfg, keep=inputs.ent_keep), metrics


@POLICY_LOSSES.register("aspo", params=AspoParams)
def aspo_loss(inputs: PolicyLossInputs, cfg: AlgoConfig) -> tuple[torch.Tensor, Metrics]:
    """ASPO: asymmetric importance sampling with flipped ratios for positive tokens.

    ℓ_t = −A_t · sg(w_t) · log π_θ(a_t) − β H_t, with r_t = π_θ/π_old (no grad) and
      A_t < 0: w_t = 0 if r_t < 1 − ε_low, else min(r_t, c);
      A_t ≥ 0: w_t = 0 if r_t > 1 + ε_high, else min(1/r_t, c)   (flipped ratio).
    The cap is "soft": a capped token still gets gradient, with weight c. At r = 1, w = 1 and
    the gradient −A_t ∇log π_θ equals GRPO's / PPO's (∇r = r ∇log π).

    Source: ASPO, arXiv 2510.06062 (only its abstract was available: "flips the IS ratios of
    positive-advantage tokens" with "a soft dual-clipping mechanism"). The exact weights above
    are our reading of that description, with ε_low = ε_high = 0.2, c = 3 by
    default (:class:`AspoParams`: ``aspo_eps_low``, ``aspo_eps_high``, ``aspo_cap``).
    Shapes: ``[B, L]``.
    """
    params = cfg.params(AspoParams)
    log_probs = inputs.log_probs
    ratio = torch.exp(log_probs - _require_old(inputs, "aspo")).detach()
    advantages = inputs.advantages
    positive = advantages >= 0
    low_masked = ~positive & (ratio < 1.0 - params.aspo_eps_low)
    high_masked = positive & (ratio > 1.0 + params.aspo_eps_high)
    raw = torch.where(positive, 1.0 / ratio, ratio)
    capped = raw > params.aspo_cap
    weight = torch.where(
        low_masked | high_masked, torch.zeros_like(raw), raw.clamp(max=params.aspo_cap)
    )
    per_token = -advantages * weight * log_probs
    metrics = {
        "actor/clip_frac_low": _frac(low_masked, inputs),
        "actor/clip_frac_high": _frac(high_masked & (advantages > 0), inputs),
        "actor/dual_clip_frac": _frac(
            capped & ~(low_masked | high_masked) & (advantages != 0), inputs
        ),
    }
    return per_token - _entropy_bonus(inputs, cfg, keep=None), metrics


def _response_nll(inputs: PolicyLossInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL ``[B, L]`` (0 at padding) and per-response mean NLL ``[B, 1]``."""
    valid = inputs.valid()
    nll = -inputs.log_probs
    mean_nll = nll.sum(dim=-1, keepdim=True) / valid.sum(dim=-1, keepdim=True).clamp(min=1)
    return nll, mean_nll


_NO_CLIP = {"actor/clip_frac_low": 0.0, "actor/clip_frac_high": 0.0}


@POLICY_LOSSES.register("asympo", params=AsympoParams, needs_old_log_probs=False)
def asympo_loss(inputs: PolicyLossInputs, cfg: AlgoConfig) -> tuple[torch.Tensor, Metrics]:
    """ASymPO: each response's NLL normalised by its own stop-gradient mean NLL.

    ℓ_t = A_t · (−log π_θ(a_t)) / max(sg(NLL_g), ε) − β H_t, NLL_g = mean_{t∈g} −log π_θ(a_t).
    With ``seq-mean-token-mean`` aggregation (the preset) a response g contributes
    A_g · NLL_g / sg(NLL_g): its forward value is exactly A_g (so a zero-sum group of
    advantages sums to zero whatever the NLL scales), and its gradient is A_g ∇log NLL_g.
    Uses current-policy log-probs only; ``old_log_probs`` is not needed.

    Source: "ASymPO: Asymmetric-Scale Policy Optimization for Asynchronous LLM Post-Training
    Without Behavior Information" (no arXiv id known to us): only the abstract was available ("normalizes
    each response's token loss by its current average token negative log-probability"). The
    stop-gradient denominator, the ε clamp (``asympo_eps``) and the per-response mean are our
    reading. Shapes: ``[B, L]`` in and out.
    """
    nll, mean_nll = _response_nll(inputs)
    per_token = inputs.advantages * nll / mean_nll.detach().clamp(min=cfg.params(AsympoParams).asympo_eps)
    return per_token - _entropy_bonus(inputs, cfg, keep=None), dict(_NO_CLIP)


@POLICY_LOSSES.register("spo", params=SpoParams, needs_old_log_probs=False)
def spo_loss(inputs: PolicyLossInputs, cfg: AlgoConfig) -> tuple[torch.Tensor, Metrics]:
    """SPO: NLL weighted by the advantage, with negative responses scaled by a fixed C.

    ℓ_t = C_t · A_t · (−log π_θ(a_t)) − β H_t, C_t = 1 if A_t ≥ 0 else ``spo_neg_scale``
    (in (0, 1), default 0.5). With ``seq-mean-token-mean`` a response contributes
    C_g · A_g · NLL_g. Current-policy log-probs only.

    Source: SPO, the fixed negative-scaling baseline of the ASymPO paper (above; abstract
    only). The form C_g · A_g · NLL_g and the default 0.5 are our reading. Shapes: ``[B, L]``.
    """
    nll, _ = _response_nll(inputs)
    scale = torch.where(inputs.advantages >= 0, 1.0, cfg.params(SpoParams).spo_neg_scale)
    per_token = scale * inputs.advantages * nll
    return per_token - _entropy_bonus(inputs, cfg, keep=None), dict(_NO_CLIP)


def _common_metrics(inputs: PolicyLossInputs, cfg: AlgoConfig) -> Metrics:
    """Metrics every loss reports, as means over this micro-batch's valid tokens."""
    valid = inputs.valid()
    mask = inputs.mask
    adv = inputs.advantages.detach()
    adv_mean = masked_mean(adv, mask)
    metrics: Metrics = {
        "actor/adv_mean": float(adv_mean),
        "actor/adv_std": float(masked_mean((adv - adv_mean) ** 2, mask).sqrt()),
        "actor/adv_masked_frac": 0.0
        if inputs.adv_keep is None
        else _frac(~inputs.adv_keep, inputs),
        "actor/ent_filtered_frac": 0.0
        if inputs.ent_keep is None
        else _frac(~inputs.ent_keep, inputs),
    }
    if inputs.old_log_probs is not None and bool(valid.any()):
        log_ratio = (inputs.log_probs - inputs.old_log_probs).detach()
        ratio = torch.exp(log_ratio[valid])
        metrics["actor/ratio_min"] = float(ratio.min())
        metrics["actor/ratio_mean"] = float(ratio.mean())
        metrics["actor/ratio_max"] = float(ratio.max())
        # k3 estimate of KL(π_old || π_θ) from samples of π_old: r − 1 − log r ≥ 0.
        approx_kl = kl_estimate(inputs.old_log_probs, inputs.log_probs.detach(), "k3")
        metrics["actor/approx_kl"] = float(masked_mean(approx_kl, mask))
    if inputs.entropy is not None:
        entropy = inputs.entropy.detach()
        metrics["actor/entropy"] = float(masked_mean(entropy, mask))
        kept = valid if inputs.ent_keep is None else valid & inputs.ent_keep
        metrics["actor/entropy_kept"] = float(masked_mean(entropy, kept))
    if inputs.ref_log_probs is not None:
        kl = kl_estimate(inputs.log_probs.detach(), inputs.ref_log_probs, cfg.kl_estimator)
        metrics["actor/kl_ref"] = float(masked_mean(kl, mask))
    return metrics


def compute_policy_loss(
    inputs: PolicyLossInputs, cfg: AlgoConfig, *, normalizer: LossNormalizer
) -> tuple[torch.Tensor, Metrics]:
    """This micro-batch's share of the mini-batch policy loss, and its metrics.

    loss = Agg(ℓ^{cfg.policy_loss}) + [kl_mode == "loss"] · kl_coef · Agg(KL_t), where Agg is
    :func:`~asyppo.algos.aggregation.aggregate_loss` with ``normalizer`` (global mini-batch
    counts, so summing the backward of every micro-batch equals one pass).

    Metrics (floats, means over this micro-batch's valid tokens): ``actor/clip_frac_low``,
    ``actor/clip_frac_high`` (and ``actor/dual_clip_frac`` when a dual clip/cap applies),
    ``actor/ratio_min|mean|max`` and ``actor/approx_kl`` (when ``old_log_probs`` is given),
    ``actor/adv_masked_frac``, ``actor/ent_filtered_frac``, ``actor/entropy`` and
    ``actor/entropy_kept`` (when ``entropy`` is given), ``actor/adv_mean``, ``actor/adv_std``,
    ``actor/kl_ref`` (when ``ref_log_probs`` is given), and ``actor/loss`` (this micro-batch's
    share: summing it over micro-batches gives the mini-batch loss).

    Raises:
        ValueError: unknown ``cfg.policy_loss``, or an input the configuration needs is None
            (``old_log_probs``, ``entropy`` when β > 0, ``ref_log_probs`` when the KL is a loss
            term).
    """
    loss_fn = POLICY_LOSSES.get(cfg.policy_loss)
    if POLICY_LOSSES.attr(cfg.policy_loss, "needs_old_log_probs", True):
        _require_old(inputs, cfg.policy_loss)
    clean = inputs.sanitized()
    per_token, metrics = loss_fn(clean, cfg)
    loss = aggregate_loss(per_token, clean.mask, normalizer)
    if cfg.kl_coef > 0 and cfg.kl_mode == "loss":
        if clean.ref_log_probs is None:
            raise ValueError(
                f"kl_coef={cfg.kl_coef} with kl_mode='loss' needs PolicyLossInputs.ref_log_probs"
            )
        kl = kl_estimate(clean.log_probs, clean.ref_log_probs, cfg.kl_estimator)
        loss = loss + cfg.kl_coef * aggregate_loss(kl, clean.mask, normalizer)
    with torch.no_grad():
        metrics.update(_common_metrics(clean, cfg))
    metrics["actor/loss"] = float(loss.detach())
    return loss, metrics
