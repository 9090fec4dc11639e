"""verl adapter: advantage estimators and the AsyPPO policy loss with verl's signatures.

verl (``verl.trainer.ppo.core_algos``) keeps per-token data padded ``[B, L]`` with a
``response_mask`` and finds advantage estimators and policy losses by name in two registries
(``register_adv_est``, ``register_policy_loss``). The functions here take and return exactly what
verl's own functions of the same name do, but compute through the engine: the padded batch is
packed once (:class:`~asyppo.integrations.padded.Packing`), the Rust kernels run over the packed
tokens, and the result is put back in ``[B, L]`` — no Python loop over rows or tokens.

Inputs may live on any device: they are computed on the CPU (where the engine runs) and returned
on the device of ``token_level_rewards``. float32/float64 inputs give verl's results up to float
rounding (the engine accumulates statistics in float64); other float dtypes are computed in
float32 and cast back.

What verl's trainer can and cannot pass (``verl/trainer/ppo/ray_trainer.py::compute_advantage``
and ``verl/workers/utils/losses.py::ppo_loss``, verl 0.9.1):

* An estimator registered under a new name is called with ``token_level_rewards``,
  ``response_mask``, ``config`` and ``index`` only; ``values`` reach the built-in ``"gae"``
  branch alone. So :func:`register` adds the critic-free estimators under their own names, and
  ``register(replace_gae=True)`` puts the engine's GAE behind verl's ``"gae"`` key.
* verl has one critic, so AsyPPO's M critic values do not exist inside verl's trainer:
  :func:`asyppo_advantages` takes a ``[M, B, L]`` values tensor the user supplies (e.g. from M
  small critic workers) and returns the advantages and both masks.
* A policy loss receives no entropy and no extra batch fields. The registered ``"asyppo"`` loss
  therefore applies the advantage mask and the filtered entropy bonus only when they are passed
  (a custom actor loss, e.g. one installed with a worker's ``set_loss_fn``); called by verl's
  stock ``ppo_loss`` it is the clipped surrogate on the advantages it is given, so store
  ``advantages * adv_keep`` as the batch's advantages (equal, since I^A is 0 or 1) and note that
  verl's own entropy bonus is then unfiltered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from verl.trainer.ppo import core_algos

from asyppo import engine
from asyppo.algos.advantages import check_critics_for_masks
from asyppo.integrations.padded import Packing

#: Advantage estimators :func:`register` adds to verl's registry, by name.
ADV_ESTIMATORS: dict[str, Any] = {}
#: Policy losses :func:`register` adds to verl's registry, by name.
POLICY_LOSSES: dict[str, Any] = {}


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (the engine's two float dtypes)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _result_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype verl's own arithmetic on these tensors would produce."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _check_shape(name: str, x: torch.Tensor, shape: torch.Size) -> None:
    if tuple(x.shape) != tuple(shape):
        raise ValueError(
            f"{name}: expected shape {tuple(shape)} (as response_mask), got {tuple(x.shape)}"
        )


def _group_ids(index: Any, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """verl's ``index`` (``[B]`` uids of one sortable kind) -> int64 ids and each row's group size."""
    uids = np.asarray(index)
    if uids.shape != (batch_size,):
        raise ValueError(
            f"index: expected {batch_size} group ids (one per row), got shape {uids.shape}"
        )
    _, inverse, counts = np.unique(uids, return_inverse=True, return_counts=True)
    ids = inverse.reshape(-1).astype(np.int64)
    return ids, counts[ids]


def compute_gae_advantage_return(
    token_level_rewards: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    gamma: float | torch.Tensor,
    lam: float | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE through the engine, returning what verl's ``compute_gae_advantage_return`` returns.

    On each row's masked tokens (positions with mask 0 skipped, as verl carries its running
    value across them): ``delta_t = r_t + gamma V_next - V_t``, ``A_t = delta_t + gamma lam
    A_next`` with ``V``, ``A`` = 0 after the row's last masked token (Schulman et al. 2015,
    arXiv 1506.02438 eq. 16). A masked-out position holds the ``A`` of the next masked token of
    its row (0 after the last). ``returns = A + values`` everywhere, then ``advantages =
    masked_whiten(A, response_mask)``.

    Args:
        token_level_rewards, values, response_mask: ``[B, L]``.
        gamma, lam: floats (or 0-d tensors) in ``[0, 1]``.

    Returns:
        ``(advantages, returns)``, ``[B, L]`` each.

    Raises:
        ValueError: shape mismatch, gamma/lam outside [0, 1], fewer than 2 masked tokens (the
            whitening's unbiased variance needs 2; verl raises too).
    """
    packing = Packing.of(response_mask)
    _check_shape("token_level_rewards", token_level_rewards, packing.mask.shape)
    _check_shape("values", values, packing.mask.shape)
    dtype = _compute_dtype(token_level_rewards, values)
    adv, _ = engine.gae(
        packing.pack(token_level_rewards).to(dtype),
        packing.pack(values).to(dtype),
        packing.offsets,
        gamma=float(gamma),
        lam=float(lam),
    )
    advantages = packing.carry_back(adv)
    returns = advantages + values.detach().to("cpu", dtype)
    advantages = engine.masked_whiten(advantages, packing.mask)
    out = _result_dtype(token_level_rewards, values)
    device = token_level_rewards.device
    return advantages.to(device, out), returns.to(device, out)


def _group_outcome(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    how: str,
    epsilon: float,
) -> torch.Tensor:
    """Per-row group advantage of the row's summed reward, broadcast over ``response_mask``.

    The engine's ``group_advantages`` gives a group of one response 0; verl gives it the score
    itself (GRPO: over a std of 1, i.e. ``score / (1 + epsilon)``), so those rows are set so.
    """
    _check_shape("token_level_rewards", token_level_rewards, response_mask.shape)
    scores = token_level_rewards.sum(dim=-1).detach().to("cpu")
    dtype = _compute_dtype(scores)
    ids, sizes = _group_ids(index, scores.shape[0])
    adv = engine.group_advantages(scores.to(dtype), ids, how=how, eps=float(epsilon))
    alone = scores.to(dtype) / (1.0 + epsilon) if how == "grpo" else scores.to(dtype)
    adv = torch.where(torch.from_numpy(sizes == 1), alone, adv)
    device = token_level_rewards.device
    return adv.to(device, scores.dtype).unsqueeze(-1) * response_mask


def compute_grpo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    epsilon: float = 1e-6,
    norm_adv_by_std_in_grpo: bool = True,
    config: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO outcome advantages through the engine, as verl's ``compute_grpo_outcome_advantage``.

    With ``r`` a row's summed reward and its group's mean and unbiased std:
    ``(r - mean) / (std + epsilon)`` (DeepSeekMath, arXiv 2402.03300 §4.1.2), or ``r - mean``
    without std scaling (Dr.GRPO, arXiv 2503.20783); a group of one keeps ``r / (1 + epsilon)``
    (resp. ``r``). Broadcast over ``response_mask`` (0 off the mask).

    Args:
        token_level_rewards, response_mask: ``[B, L]``. index: ``[B]`` group ids (verl's uids).
        config, kwargs: accepted for verl's calling convention and unused.

    Returns:
        ``(advantages, returns)``, the same ``[B, L]`` tensor twice, as verl returns.
    """
    how = "grpo" if norm_adv_by_std_in_grpo else "drgrpo"
    adv = _group_outcome(token_level_rewards, response_mask, index, how, epsilon)
    return adv, adv


def compute_drgrpo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    epsilon: float = 1e-6,
    config: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dr.GRPO (arXiv 2503.20783): :func:`compute_grpo_outcome_advantage` without std scaling.

    verl's generic estimator dispatch passes no ``norm_adv_by_std_in_grpo``, so Dr.GRPO gets its
    own registry name.
    """
    return compute_grpo_outcome_advantage(
        token_level_rewards, response_mask, index, epsilon, norm_adv_by_std_in_grpo=False
    )


def compute_rloo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    epsilon: float = 1e-6,
    config: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RLOO advantages through the engine, as verl's ``compute_rloo_outcome_advantage``.

    ``r - (sum_g - r) / (n_g - 1)``, the mean of the other responses of the group as baseline
    (Ahmadian et al. 2024, arXiv 2402.14740 §3); a group of one keeps ``r``. Broadcast over
    ``response_mask``. ``epsilon``, ``config`` and ``kwargs`` are accepted and unused, as in verl.

    Returns:
        ``(advantages, returns)``, the same ``[B, L]`` tensor twice.
    """
    adv = _group_outcome(token_level_rewards, response_mask, index, "rloo", epsilon)
    return adv, adv


def compute_reinforce_plus_plus_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    config: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE++ through the engine, as verl's ``compute_reinforce_plus_plus_outcome_advantage``.

    ``G_t = sum_k gamma^k r_{t+k}`` over each row's masked tokens (the engine's GAE with V = 0,
    lam = 1; masked-out rewards skipped), 0 off the mask; ``advantages = masked_whiten(G) *
    response_mask`` (Hu 2025, arXiv 2501.03262 §3).

    Args:
        token_level_rewards, response_mask: ``[B, L]``.
        config: verl's ``AlgoConfig``; its ``gamma`` is the discount.

    Returns:
        ``(advantages, returns)``, ``[B, L]`` each.

    Raises:
        ValueError: ``config`` is None, shape mismatch, fewer than 2 masked tokens.
    """
    if config is None:
        raise ValueError("config: expected verl's AlgoConfig (its gamma is the discount), got None")
    packing = Packing.of(response_mask)
    _check_shape("token_level_rewards", token_level_rewards, packing.mask.shape)
    rewards = packing.pack(token_level_rewards).to(_compute_dtype(token_level_rewards))
    to_go, _ = engine.gae(
        rewards, torch.zeros_like(rewards), packing.offsets, gamma=float(config.gamma), lam=1.0
    )
    returns = packing.scatter(to_go)
    advantages = engine.masked_whiten(returns, packing.mask) * packing.mask
    device, dtype = token_level_rewards.device, token_level_rewards.dtype
    return advantages.to(device, dtype), returns.to(device, dtype)


def masked_whiten(
    values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True
) -> torch.Tensor:
    """verl's ``verl.utils.torch_functional.masked_whiten`` through the engine.

    ``(x - mean) / sqrt(var + 1e-8)`` (``+ mean`` when ``shift_mean`` is False) with the mean and
    unbiased variance of the masked elements; every element is transformed. Any shape.

    Raises:
        ValueError: shape mismatch, fewer than 2 masked elements.
    """
    x = values.detach().to("cpu")
    dtype = _compute_dtype(x)
    out = engine.masked_whiten(x.to(dtype), mask.detach().to("cpu"), shift_mean=shift_mean)
    return out.to(values.device, values.dtype)


@dataclass(frozen=True)
class AsyPPOAdvantages:
    """AsyPPO's advantages and masks, padded ``[B, L]`` (0 / False off the response mask).

    Attributes:
        advantages: GAE on the aggregated critic value (not whitened).
        returns: ``advantages + value``, the critics' regression target.
        value: the aggregated value (mean or min over the M critics).
        std: the population std over the M critics.
        adv_keep: bool, I^A (False = advantage masked: the most-agreed tokens).
        ent_keep: bool, I^H (False = out of the entropy bonus: the most-disputed tokens).
    """

    advantages: torch.Tensor
    returns: torch.Tensor
    value: torch.Tensor
    std: torch.Tensor
    adv_keep: torch.Tensor
    ent_keep: torch.Tensor


def asyppo_advantages(
    token_level_rewards: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 1.0,
    adv_mask_ratio: float = 0.2,
    ent_filter_ratio: float = 0.2,
    value_agg: str = "mean",
    mask_scope: str = "batch",
    index: Any = None,
) -> AsyPPOAdvantages:
    """AsyPPO's advantage step (arXiv 2510.01656 §3, eqs. 3–5) on verl's padded batch.

    ``V̄ = mean_m V_m`` (or min), ``σ = std_m V_m`` (ddof 0) over the M critics; GAE on ``V̄``
    as in :func:`compute_gae_advantage_return` but unwhitened and 0 off the mask; within each
    ``mask_scope`` (the batch, each row, or each group of ``index``) the ``floor(adv_mask_ratio
    * n)`` lowest-σ tokens get ``adv_keep = False`` and the ``floor(ent_filter_ratio * n)``
    highest-σ tokens ``ent_keep = False`` (``engine.percentile_masks``). The paper's A.3
    setting is the default: gamma = lam = 1, mean aggregation, 20 % / 20 %.

    verl's trainer has one critic: the values of the M critics come from the caller.

    Args:
        token_level_rewards, response_mask: ``[B, L]``.
        values: ``[M, B, L]`` float, one slice per critic (M >= 2 when a ratio is > 0).
        index: ``[B]`` group ids, required for ``mask_scope="group"``.

    Raises:
        ValueError: bad shapes, M < 2 with a mask ratio > 0, ratios outside [0, 1] or summing
            past 1, ``mask_scope="group"`` without ``index``, unknown ``value_agg``/``mask_scope``.
    """
    packing = Packing.of(response_mask)
    _check_shape("token_level_rewards", token_level_rewards, packing.mask.shape)
    if values.dim() != 3 or tuple(values.shape[1:]) != tuple(packing.mask.shape):
        raise ValueError(
            f"values: expected [M, B, L] with [B, L] = {tuple(packing.mask.shape)}, "
            f"got {tuple(values.shape)}"
        )
    check_critics_for_masks(values.shape[0], adv_mask_ratio, ent_filter_ratio, count="M")
    if mask_scope == "group" and index is None:
        raise ValueError("index: mask_scope='group' needs the [B] group ids, got None")
    dtype = _compute_dtype(token_level_rewards, values)
    per_critic = packing.pack(values).to(dtype)  # [M, T]
    value, std = engine.aggregate_values(per_critic, how=value_agg)
    adv, ret = engine.gae(
        packing.pack(token_level_rewards).to(dtype),
        value,
        packing.offsets,
        gamma=gamma,
        lam=lam,
    )
    group_ids = None if index is None else _group_ids(index, packing.mask.shape[0])[0]
    adv_keep, ent_keep = engine.percentile_masks(
        std,
        low=adv_mask_ratio,
        high=ent_filter_ratio,
        offsets=packing.offsets,
        group_ids=group_ids,
        scope=mask_scope,
    )
    device, out = token_level_rewards.device, _result_dtype(token_level_rewards, values)
    return AsyPPOAdvantages(
        *(packing.scatter(x).to(device, out) for x in (adv, ret, value, std)),
        *(packing.scatter(x).to(device) for x in (adv_keep, ent_keep)),
    )


def compute_policy_loss_asyppo(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config: Any = None,
    rollout_is_weights: torch.Tensor | None = None,
    *,
    adv_keep: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    ent_keep: torch.Tensor | None = None,
    entropy_coeff: float = 0.0,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """AsyPPO's policy loss (arXiv 2510.01656 eqs. 4–5) as a verl policy loss.

    ``L = agg(I^A_t · clipPPO_t) - entropy_coeff · agg(I^H_t · H_t)``, where ``clipPPO`` is
    verl's own ``compute_policy_loss_vanilla`` (clip-higher, dual clip and rollout weights from
    ``config``; called on ``I^A · A``, which equals ``I^A`` times the clipped term since
    ``I^A`` is 0 or 1) and ``agg`` is verl's ``agg_loss`` with ``loss_agg_mode``: masked tokens
    keep their place in the denominator.

    verl's stock actor loss passes the first seven arguments only; the keyword-only ones are for
    an actor loss of the user's own that has the masks and the entropy at hand.

    Args:
        old_log_prob, log_prob, advantages, response_mask: ``[B, L]``.
        config: verl's ``ActorConfig`` (clip ratios, ``global_batch_info``).
        adv_keep, ent_keep: bool ``[B, L]`` (None = all kept).
        entropy: ``[B, L]`` policy entropy (with grad); needed when ``entropy_coeff > 0``.

    Returns:
        ``(loss, metrics)`` as verl's policy losses return; metrics add
        ``actor/adv_masked_frac`` and, with an entropy, ``actor/entropy_kept``.
    """
    mask = response_mask.bool()
    masked_adv = advantages if adv_keep is None else advantages * adv_keep
    loss, metrics = core_algos.compute_policy_loss_vanilla(
        old_log_prob, log_prob, masked_adv, response_mask, loss_agg_mode, config, rollout_is_weights
    )
    n_valid = max(int(mask.sum()), 1)
    metrics["actor/adv_masked_frac"] = (
        0.0 if adv_keep is None else float((~adv_keep.bool() & mask).sum()) / n_valid
    )
    if entropy_coeff > 0:
        if entropy is None:
            raise ValueError(
                f"entropy: entropy_coeff={entropy_coeff} > 0 needs the [B, L] entropy, got None"
            )
        kept = entropy if ent_keep is None else entropy * ent_keep
        bonus = core_algos.agg_loss(
            loss_mat=kept,
            loss_mask=response_mask,
            loss_agg_mode=loss_agg_mode,
            **config.global_batch_info,
        )
        loss = loss - entropy_coeff * bonus
        metrics["actor/entropy_kept"] = float(bonus.detach())
    return loss, metrics


ADV_ESTIMATORS.update(
    asyppo_grpo=compute_grpo_outcome_advantage,
    asyppo_drgrpo=compute_drgrpo_outcome_advantage,
    asyppo_rloo=compute_rloo_outcome_advantage,
    asyppo_reinforce_plus_plus=compute_reinforce_plus_plus_outcome_advantage,
)
POLICY_LOSSES.update(asyppo=compute_policy_loss_asyppo)


def register(replace_gae: bool = False) -> None:
    """Register the engine's estimators and the AsyPPO loss in verl's registries.

    After it, ``algorithm.adv_estimator=asyppo_grpo`` (``asyppo_drgrpo``, ``asyppo_rloo``,
    ``asyppo_reinforce_plus_plus``) and ``actor_rollout_ref.actor.policy_loss.loss_mode=asyppo``
    select them. Call it in every process that computes advantages or losses (the driver for the
    estimators, the actor workers for the loss). Idempotent.

    Args:
        replace_gae: also make verl's built-in ``"gae"`` key run the engine's GAE
            (:func:`compute_gae_advantage_return`). verl's trainer passes ``values`` only to that
            key, so a new name cannot get them; this replaces
            ``core_algos.compute_gae_advantage_return`` (which the trainer calls) and the
            registry entry.
    """
    for name, fn in ADV_ESTIMATORS.items():
        core_algos.register_adv_est(name)(fn)
    for name, fn in POLICY_LOSSES.items():
        core_algos.register_policy_loss(name)(fn)
    if replace_gae:
        core_algos.compute_gae_advantage_return = compute_gae_advantage_return
        core_algos.ADV_ESTIMATOR_REGISTRY["gae"] = compute_gae_advantage_return
