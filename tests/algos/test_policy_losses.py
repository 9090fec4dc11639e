"""Policy losses as specifications: hand-computed values and gradients on tiny tensors, padding
and micro-batch invariance, masking semantics, and the inputs each loss requires."""

from __future__ import annotations

import math

import pytest
import torch
from asyppo.algos import (
    LOSS_AGG_MODES,
    AlgoConfig,
    LossNormalizer,
    PolicyLossInputs,
    compute_policy_loss,
    kl_estimate,
)

LOSSES = ("ppo", "asyppo", "aspo", "asympo", "spo")


def _norm(
    mask: torch.Tensor, mode: str = "token-mean", constant: float | None = None
) -> LossNormalizer:
    valid = mask > 0
    return LossNormalizer(mode, int(valid.sum()), int(valid.any(-1).sum()), constant)


def _row(values: list[float], requires_grad: bool = False) -> torch.Tensor:
    return torch.tensor([values], requires_grad=requires_grad)


def _ratio_inputs(
    ratios: list[float], advantages: list[float], **extra: torch.Tensor
) -> tuple[PolicyLossInputs, torch.Tensor]:
    """One response whose current/old log-probs give the ``ratios``; returns (inputs, log_probs leaf)."""
    old = _row([-1.0] * len(ratios))
    log_probs = (old + torch.log(torch.tensor([ratios]))).requires_grad_(True)
    mask = torch.ones_like(old)
    return PolicyLossInputs(log_probs, old, _row(advantages), mask, **extra), log_probs


def _grad(loss: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    loss.backward()
    assert leaf.grad is not None
    return leaf.grad


# --- PPO ---------------------------------------------------------------------------------------
# ratios r = [1.5, 0.5, 1.0, 4.0], A = [1, -1, 2, -1], clip 0.2 / 0.28, c = 3:
#   t0: max(-1.5, -1.28) = -1.28 (clip-high binds)      t1: max(0.5, 0.8) = 0.8 (clip-low binds)
#   t2: -2 (no clip)                                    t3: max(4, 1.28) = 4 -> dual clip min(4, 3) = 3
PPO = AlgoConfig(name="ppo", clip_high=0.28)
RATIOS, ADVS = [1.5, 0.5, 1.0, 4.0], [1.0, -1.0, 2.0, -1.0]


def test_ppo_loss_is_the_clipped_surrogate_with_dual_clip() -> None:
    inputs, _ = _ratio_inputs(RATIOS, ADVS)
    loss, _ = compute_policy_loss(inputs, PPO, normalizer=_norm(inputs.mask))
    assert loss.item() == pytest.approx((-1.28 + 0.8 - 2.0 + 3.0) / 4)


def test_ppo_without_dual_clip_keeps_the_unbounded_negative_term() -> None:
    inputs, _ = _ratio_inputs(RATIOS, ADVS)
    cfg = AlgoConfig(name="ppo", clip_high=0.28, clip_c=None)
    loss, _ = compute_policy_loss(inputs, cfg, normalizer=_norm(inputs.mask))
    assert loss.item() == pytest.approx((-1.28 + 0.8 - 2.0 + 4.0) / 4)


def test_ppo_reports_low_high_and_dual_clip_fractions_separately() -> None:
    inputs, _ = _ratio_inputs(RATIOS, ADVS)
    _, metrics = compute_policy_loss(inputs, PPO, normalizer=_norm(inputs.mask))
    assert metrics["actor/clip_frac_low"] == 0.25
    assert metrics["actor/clip_frac_high"] == 0.25
    assert metrics["actor/dual_clip_frac"] == 0.25
    assert metrics["actor/ratio_min"] == pytest.approx(0.5)
    assert metrics["actor/ratio_max"] == pytest.approx(4.0)
    assert metrics["actor/ratio_mean"] == pytest.approx(7.0 / 4)


def test_ppo_gradient_is_zero_on_clipped_tokens_and_minus_a_r_over_n_elsewhere() -> None:
    inputs, leaf = _ratio_inputs(RATIOS, ADVS)
    loss, _ = compute_policy_loss(inputs, PPO, normalizer=_norm(inputs.mask))
    assert torch.allclose(_grad(loss, leaf), torch.tensor([[0.0, 0.0, -2.0 / 4, 0.0]]))


def test_approx_kl_is_the_k3_estimate_of_kl_old_to_new() -> None:
    inputs, _ = _ratio_inputs([2.0, 0.5], [1.0, 1.0])
    _, metrics = compute_policy_loss(inputs, PPO, normalizer=_norm(inputs.mask))
    expected = ((2 - 1 - math.log(2)) + (0.5 - 1 - math.log(0.5))) / 2
    assert metrics["actor/approx_kl"] == pytest.approx(expected, rel=1e-5)


# --- AsyPPO ------------------------------------------------------------------------------------
ASYPPO = AlgoConfig(name="asyppo")


def test_asyppo_masked_advantages_give_zero_gradient_but_stay_in_the_denominator() -> None:
    keep = torch.tensor([[True, False, True, False]])
    inputs, leaf = _ratio_inputs(
        [1.0] * 4, [1.0, 2.0, 3.0, 4.0], adv_keep=keep, entropy=torch.zeros(1, 4)
    )
    loss, metrics = compute_policy_loss(inputs, ASYPPO, normalizer=_norm(inputs.mask))
    assert loss.item() == pytest.approx(-(1.0 + 3.0) / 4)
    assert torch.allclose(_grad(loss, leaf), torch.tensor([[-0.25, 0.0, -0.75, 0.0]]))
    assert metrics["actor/adv_masked_frac"] == 0.5


def test_asyppo_entropy_bonus_counts_only_kept_tokens_over_all_tokens() -> None:
    entropy = _row([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    keep = torch.tensor([[True, True, False, True]])
    inputs, _ = _ratio_inputs([1.0] * 4, [0.0] * 4, entropy=entropy, ent_keep=keep)
    loss, metrics = compute_policy_loss(inputs, ASYPPO, normalizer=_norm(inputs.mask))
    assert loss.item() == pytest.approx(-0.01 * (1 + 2 + 4) / 4)
    assert torch.allclose(_grad(loss, entropy), torch.tensor([[-0.0025, -0.0025, 0.0, -0.0025]]))
    assert metrics["actor/entropy"] == pytest.approx(2.5)
    assert metrics["actor/entropy_kept"] == pytest.approx(7 / 3)
    assert metrics["actor/ent_filtered_frac"] == 0.25


def test_ppo_entropy_bonus_ignores_the_critic_filter() -> None:
    entropy = _row([1.0, 2.0], requires_grad=True)
    inputs, _ = _ratio_inputs(
        [1.0, 1.0], [0.0, 0.0], entropy=entropy, ent_keep=torch.tensor([[True, False]])
    )
    cfg = AlgoConfig(name="ppo", entropy_coef=0.1)
    loss, _ = compute_policy_loss(inputs, cfg, normalizer=_norm(inputs.mask))
    assert torch.allclose(_grad(loss, entropy), torch.tensor([[-0.05, -0.05]]))


# --- ASPO --------------------------------------------------------------------------------------
ASPO = AlgoConfig(name="aspo")


@pytest.mark.parametrize(
    ("ratio", "advantage", "weight"),
    [
        (1.1, 1.0, 1 / 1.1),  # A > 0 inside the range: flipped ratio 1/r
        (0.25, 1.0, 3.0),  # A > 0, 1/r = 4 > c: soft cap at c, gradient still flows
        (1.5, 1.0, 0.0),  # A > 0, r > 1 + eps_high: masked
        (2.0, -1.0, 2.0),  # A < 0 inside the range: plain ratio r
        (4.0, -1.0, 3.0),  # A < 0, r > c: soft cap at c
        (0.5, -1.0, 0.0),  # A < 0, r < 1 - eps_low: masked
    ],
)
def test_aspo_gradient_weight_matches_the_asymmetric_rule(
    ratio: float, advantage: float, weight: float
) -> None:
    inputs, leaf = _ratio_inputs([ratio], [advantage])
    loss, _ = compute_policy_loss(inputs, ASPO, normalizer=_norm(inputs.mask))
    assert _grad(loss, leaf).item() == pytest.approx(-advantage * weight, rel=1e-6)


def test_aspo_gradient_equals_grpo_at_ratio_one() -> None:
    advantages = [1.5, -0.5, 2.0]
    aspo_inputs, aspo_leaf = _ratio_inputs([1.0] * 3, advantages)
    aspo_loss, _ = compute_policy_loss(aspo_inputs, ASPO, normalizer=_norm(aspo_inputs.mask))
    ppo_inputs, ppo_leaf = _ratio_inputs([1.0] * 3, advantages)
    grpo_cfg = AlgoConfig(name="grpo", loss_agg="token-mean")
    ppo_loss, _ = compute_policy_loss(ppo_inputs, grpo_cfg, normalizer=_norm(ppo_inputs.mask))
    assert torch.allclose(_grad(aspo_loss, aspo_leaf), _grad(ppo_loss, ppo_leaf))


# --- ASymPO and SPO ----------------------------------------------------------------------------
ASYMPO = AlgoConfig(name="asympo")


def _response(log_probs: list[float], advantage: float) -> tuple[PolicyLossInputs, torch.Tensor]:
    leaf = _row(log_probs, requires_grad=True)
    adv = _row([advantage] * len(log_probs))
    return PolicyLossInputs(leaf, None, adv, torch.ones_like(adv)), leaf


@pytest.mark.parametrize("log_probs", [[-1.0, -3.0], [-0.01, -0.02, -0.03], [-20.0]])
def test_asympo_forward_value_of_a_response_is_its_advantage(log_probs: list[float]) -> None:
    inputs, _ = _response(log_probs, advantage=0.7)
    loss, _ = compute_policy_loss(inputs, ASYMPO, normalizer=_norm(inputs.mask, ASYMPO.loss_agg))
    assert loss.item() == pytest.approx(0.7, rel=1e-6)


def test_asympo_gradient_is_advantage_times_grad_log_nll() -> None:
    # NLL = mean(1, 3) = 2; d/dlogp_t of A * NLL / sg(NLL) = A * (-1 / n) / NLL = 2 * -0.5 / 2.
    inputs, leaf = _response([-1.0, -3.0], advantage=2.0)
    loss, _ = compute_policy_loss(inputs, ASYMPO, normalizer=_norm(inputs.mask, ASYMPO.loss_agg))
    assert torch.allclose(_grad(loss, leaf), torch.tensor([[-0.5, -0.5]]))


def test_asympo_zero_sum_group_has_zero_loss_and_nonzero_gradient() -> None:
    leaf = torch.tensor(
        [[-0.1, -0.2, -0.3], [-2.0, -4.0, 0.0], [-5.0, 0.0, 0.0]], requires_grad=True
    )
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    adv = torch.tensor([[1.0] * 3, [-0.5] * 3, [-0.5] * 3])
    inputs = PolicyLossInputs(leaf, None, adv, mask)
    loss, _ = compute_policy_loss(inputs, ASYMPO, normalizer=_norm(mask, ASYMPO.loss_agg))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    grad = _grad(loss, leaf)
    assert (grad[mask > 0] != 0).all()


def test_asympo_clamps_a_zero_nll_denominator() -> None:
    inputs, leaf = _response([0.0, 0.0], advantage=1.0)
    loss, _ = compute_policy_loss(inputs, ASYMPO, normalizer=_norm(inputs.mask, ASYMPO.loss_agg))
    assert loss.item() == 0.0
    assert torch.isfinite(_grad(loss, leaf)).all()


@pytest.mark.parametrize(("advantage", "expected"), [(1.0, 2.0), (-1.0, -0.5 * 2.0)])
def test_spo_scales_only_negative_responses(advantage: float, expected: float) -> None:
    inputs, _ = _response([-1.0, -3.0], advantage)
    cfg = AlgoConfig(name="spo")
    loss, _ = compute_policy_loss(inputs, cfg, normalizer=_norm(inputs.mask, cfg.loss_agg))
    assert loss.item() == pytest.approx(expected)


# --- KL term and required inputs ---------------------------------------------------------------
def test_kl_loss_term_adds_coef_times_the_mean_estimate() -> None:
    inputs, _ = _ratio_inputs([1.0, 1.0], [0.0, 0.0], ref_log_probs=_row([-1.5, -0.5]))
    cfg = AlgoConfig(name="grpo", loss_agg="token-mean", kl_coef=0.1)
    loss, metrics = compute_policy_loss(inputs, cfg, normalizer=_norm(inputs.mask))
    expected_kl = kl_estimate(_row([-1.0, -1.0]), _row([-1.5, -0.5]), "k3").mean().item()
    assert loss.item() == pytest.approx(0.1 * expected_kl, rel=1e-6)
    assert metrics["actor/kl_ref"] == pytest.approx(expected_kl, rel=1e-6)


def test_kl_loss_without_reference_log_probs_is_rejected() -> None:
    inputs, _ = _ratio_inputs([1.0], [1.0])
    cfg = AlgoConfig(name="grpo", kl_coef=0.1)
    with pytest.raises(ValueError, match="ref_log_probs"):
        compute_policy_loss(inputs, cfg, normalizer=_norm(inputs.mask))


@pytest.mark.parametrize("loss_name", ["ppo", "asyppo", "aspo"])
def test_ratio_losses_require_old_log_probs(loss_name: str) -> None:
    inputs, _ = _response([-1.0], 1.0)
    with pytest.raises(ValueError, match="needs PolicyLossInputs.old_log_probs"):
        compute_policy_loss(inputs, AlgoConfig(name=loss_name), normalizer=_norm(inputs.mask))


def test_entropy_coefficient_without_entropy_is_rejected() -> None:
    inputs, _ = _ratio_inputs([1.0], [1.0])
    with pytest.raises(ValueError, match="needs PolicyLossInputs.entropy"):
        compute_policy_loss(inputs, ASYPPO, normalizer=_norm(inputs.mask))


def test_inputs_with_mismatched_shapes_name_the_field() -> None:
    with pytest.raises(ValueError, match="advantages has shape"):
        PolicyLossInputs(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 2), torch.ones(2, 3))


def test_keep_masks_must_be_bool() -> None:
    with pytest.raises(TypeError, match="adv_keep must be a bool tensor"):
        PolicyLossInputs(
            torch.zeros(1, 2), None, torch.zeros(1, 2), torch.ones(1, 2), adv_keep=torch.ones(1, 2)
        )


# --- invariances, every loss x every aggregation -----------------------------------------------
def _random_batch(rows: int, width: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (rows,), generator=gen)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).float()
    log_probs = -2 * torch.rand(rows, width, generator=gen)
    return {
        "log_probs": log_probs,
        "old_log_probs": log_probs + 0.3 * torch.randn(rows, width, generator=gen),
        "advantages": torch.randn(rows, 1, generator=gen).expand(rows, width).clone(),
        "mask": mask,
        "entropy": 3 * torch.rand(rows, width, generator=gen),
        "adv_keep": torch.rand(rows, width, generator=gen) > 0.3,
        "ent_keep": torch.rand(rows, width, generator=gen) > 0.3,
    }


def _cfg(loss_name: str, agg: str) -> AlgoConfig:
    # a non-zero entropy coefficient so the entropy path is exercised for every loss
    return AlgoConfig(name=loss_name, loss_agg=agg, entropy_coef=0.05)


def _loss_and_grads(
    batch: dict[str, torch.Tensor], cfg: AlgoConfig, normalizer: LossNormalizer
) -> tuple[float, torch.Tensor, torch.Tensor]:
    log_probs = batch["log_probs"].clone().requires_grad_(True)
    entropy = batch["entropy"].clone().requires_grad_(True)
    inputs = PolicyLossInputs(**{**batch, "log_probs": log_probs, "entropy": entropy})
    loss, _ = compute_policy_loss(inputs, cfg, normalizer=normalizer)
    loss.backward()
    assert log_probs.grad is not None and entropy.grad is not None
    return loss.item(), log_probs.grad, entropy.grad


@pytest.mark.parametrize("agg", LOSS_AGG_MODES)
@pytest.mark.parametrize("loss_name", LOSSES)
def test_extra_padding_changes_neither_loss_nor_gradient(loss_name: str, agg: str) -> None:
    batch = _random_batch(4, 6, seed=0)
    cfg = _cfg(loss_name, agg)
    loss, grad, ent_grad = _loss_and_grads(batch, cfg, _norm(batch["mask"], agg, 6.0))

    garbage = {
        "log_probs": float("nan"),
        "old_log_probs": -float("inf"),
        "advantages": 1e30,
        "mask": 0.0,
        "entropy": float("inf"),
        "adv_keep": True,
        "ent_keep": True,
    }
    padded = {
        key: torch.cat([value, torch.full((4, 3), garbage[key], dtype=value.dtype)], dim=1)
        for key, value in batch.items()
    }
    padded_loss, padded_grad, padded_ent_grad = _loss_and_grads(
        padded, cfg, _norm(padded["mask"], agg, 6.0)
    )
    assert padded_loss == pytest.approx(loss, rel=1e-6)
    assert torch.allclose(padded_grad[:, :6], grad) and (padded_grad[:, 6:] == 0).all()
    assert torch.allclose(padded_ent_grad[:, :6], ent_grad) and (padded_ent_grad[:, 6:] == 0).all()


@pytest.mark.parametrize("agg", LOSS_AGG_MODES)
@pytest.mark.parametrize("loss_name", LOSSES)
def test_four_accumulated_micro_batches_give_the_one_pass_gradient(
    loss_name: str, agg: str
) -> None:
    batch = _random_batch(8, 7, seed=1)
    cfg = _cfg(loss_name, agg)
    normalizer = _norm(batch["mask"], agg, 7.0)
    loss, grad, ent_grad = _loss_and_grads(batch, cfg, normalizer)

    log_probs = batch["log_probs"].clone().requires_grad_(True)
    entropy = batch["entropy"].clone().requires_grad_(True)
    total = 0.0
    for rows in torch.arange(8).split(2):
        # each micro-batch trimmed to its own longest response, as a packer would pad it
        width = int(batch["mask"][rows].sum(-1).max())
        micro = {key: value[rows, :width] for key, value in batch.items()}
        micro |= {"log_probs": log_probs[rows, :width], "entropy": entropy[rows, :width]}
        micro_loss, _ = compute_policy_loss(PolicyLossInputs(**micro), cfg, normalizer=normalizer)
        micro_loss.backward()
        total += micro_loss.item()
    assert total == pytest.approx(loss, rel=1e-5, abs=1e-7)
    assert log_probs.grad is not None and entropy.grad is not None
    assert torch.allclose(log_probs.grad, grad, atol=1e-7)
    assert torch.allclose(entropy.grad, ent_grad, atol=1e-7)


@pytest.mark.parametrize("loss_name", LOSSES)
def test_every_loss_reports_the_common_metrics(loss_name: str) -> None:
    batch = _random_batch(3, 5, seed=2)
    inputs = PolicyLossInputs(**batch)
    _, metrics = compute_policy_loss(
        inputs, AlgoConfig(name=loss_name), normalizer=_norm(batch["mask"])
    )
    expected = {
        "actor/loss",
        "actor/clip_frac_low",
        "actor/clip_frac_high",
        "actor/approx_kl",
        "actor/ratio_min",
        "actor/ratio_mean",
        "actor/ratio_max",
        "actor/adv_masked_frac",
        "actor/ent_filtered_frac",
        "actor/entropy",
        "actor/entropy_kept",
        "actor/adv_mean",
        "actor/adv_std",
    }
    assert expected <= set(metrics)
    assert all(isinstance(value, float) and math.isfinite(value) for value in metrics.values())
