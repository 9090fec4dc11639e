"""Advantage estimators against plain numpy references written here, and the masks end to end:
the tokens the engine marks are exactly the tokens the loss stops learning from."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from asyppo.algos import (
    AdvantageBatch,
    AlgoConfig,
    LossNormalizer,
    PolicyLossInputs,
    compute_advantages,
    compute_policy_loss,
    fold_kl_into_rewards,
)

# Three responses of lengths 4, 3, 3 (T = 10) to two prompts; the reward sits on the last token.
OFFSETS = np.array([0, 4, 7, 10], dtype=np.int64)
SCORES = np.array([1.0, 0.0, 1.0], dtype=np.float32)
GROUPS = np.array([0, 0, 1], dtype=np.int64)


def _token_rewards(scores: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    rewards = np.zeros(offsets[-1], dtype=np.float32)
    rewards[offsets[1:] - 1] = scores
    return rewards


def _critic_values(n_critics: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n_critics, OFFSETS[-1])).astype(np.float32)


def _batch(critic_values: np.ndarray | None = None, **overrides: np.ndarray) -> AdvantageBatch:
    fields = {
        "offsets": OFFSETS,
        "token_rewards": _token_rewards(SCORES, OFFSETS),
        "scores": SCORES,
        "group_ids": GROUPS,
        "critic_values": critic_values,
    }
    return AdvantageBatch(**{**fields, **overrides})


def _reference_gae(
    rewards: np.ndarray, values: np.ndarray, offsets: np.ndarray, gamma: float, lam: float
) -> np.ndarray:
    advantages = np.zeros_like(rewards, dtype=np.float64)
    for start, stop in itertools.pairwise(offsets):
        running, next_value = 0.0, 0.0
        for t in range(stop - 1, start - 1, -1):
            delta = rewards[t] + gamma * next_value - values[t]
            running = delta + gamma * lam * running
            advantages[t] = running
            next_value = values[t]
    return advantages


def _per_token(per_seq: list[float]) -> np.ndarray:
    return np.repeat(np.asarray(per_seq), np.diff(OFFSETS))


# --- GAE on the critics' mean ------------------------------------------------------------------
@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 1.0), (0.9, 0.8)])
def test_gae_runs_on_the_mean_critic_value(gamma: float, lam: float) -> None:
    critic_values = _critic_values(2)
    cfg = AlgoConfig(name="ppo", gamma=gamma, lam=lam)
    result = compute_advantages(_batch(critic_values), cfg, seed=0)
    mean_value = critic_values.mean(0)
    expected = _reference_gae(_token_rewards(SCORES, OFFSETS), mean_value, OFFSETS, gamma, lam)
    np.testing.assert_allclose(result.advantages, expected, rtol=1e-5, atol=1e-6)
    assert result.values is not None and result.returns is not None and result.value_std is not None
    np.testing.assert_allclose(result.values, mean_value, rtol=1e-6)
    np.testing.assert_allclose(result.returns, expected + mean_value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.value_std, critic_values.std(0), rtol=1e-5, atol=1e-6)


def test_gae_with_min_aggregation_uses_the_smallest_critic_value() -> None:
    critic_values = _critic_values(3)
    result = compute_advantages(
        _batch(critic_values), AlgoConfig(name="ppo", value_agg="min"), seed=0
    )
    assert result.values is not None
    np.testing.assert_allclose(result.values, critic_values.min(0))


def test_masks_are_all_kept_when_both_ratios_are_zero() -> None:
    result = compute_advantages(_batch(_critic_values(2)), AlgoConfig(name="ppo"), seed=0)
    assert result.adv_keep.all() and result.ent_keep.all()


def test_asyppo_masks_the_lowest_std_advantages_and_filters_the_highest_std_entropies() -> None:
    critic_values = _critic_values(2, seed=3)
    std = critic_values.std(0)
    cfg = AlgoConfig(adv_mask_ratio=0.3, ent_filter_ratio=0.2)
    result = compute_advantages(_batch(critic_values), cfg, seed=0)
    order = np.argsort(std, kind="stable")
    assert set(np.flatnonzero(~result.adv_keep)) == set(order[:3])  # floor(0.3 * 10)
    assert set(np.flatnonzero(~result.ent_keep)) == set(order[-2:])  # floor(0.2 * 10)


def test_sequence_scope_counts_the_mask_fraction_within_each_response() -> None:
    cfg = AlgoConfig(adv_mask_ratio=0.5, ent_filter_ratio=0.0, mask_scope="sequence")
    result = compute_advantages(_batch(_critic_values(2, seed=4)), cfg, seed=0)
    masked_per_response = np.add.reduceat(~result.adv_keep, OFFSETS[:-1])
    np.testing.assert_array_equal(masked_per_response, [2, 1, 1])  # floor(0.5 * [4, 3, 3])
    assert result.ent_keep.all()


def test_masks_with_a_single_critic_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"need critics >= 2 \(got 1\)"):
        compute_advantages(_batch(_critic_values(1)), AlgoConfig(), seed=0)


def test_a_single_critic_without_masks_runs_naive_asymmetric_ppo() -> None:
    critic_values = _critic_values(1)
    result = compute_advantages(_batch(critic_values), AlgoConfig(name="ppo"), seed=0)
    expected = _reference_gae(_token_rewards(SCORES, OFFSETS), critic_values[0], OFFSETS, 1, 1)
    np.testing.assert_allclose(result.advantages, expected, rtol=1e-5, atol=1e-6)


def test_gae_without_critic_values_is_rejected() -> None:
    with pytest.raises(ValueError, match="needs AdvantageBatch.critic_values"):
        compute_advantages(_batch(None), AlgoConfig(), seed=0)


# --- group baselines ---------------------------------------------------------------------------
GROUP_SCORES = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0], dtype=np.float32)
GROUP_IDS = np.array([0, 0, 0, 0, 1, 1], dtype=np.int64)
GROUP_OFFSETS = np.array([0, 2, 3, 5, 6, 8, 9], dtype=np.int64)


def _group_batch() -> AdvantageBatch:
    return AdvantageBatch(
        GROUP_OFFSETS, _token_rewards(GROUP_SCORES, GROUP_OFFSETS), GROUP_SCORES, GROUP_IDS
    )


@pytest.mark.parametrize(
    ("name", "per_seq"),
    [
        # group 0: mean 0.5, unbiased std sqrt(1/3); group 1: all equal -> 0
        ("grpo", [0.5 * 3**0.5, -0.5 * 3**0.5, -0.5 * 3**0.5, 0.5 * 3**0.5, 0.0, 0.0]),
        ("drgrpo", [0.5, -0.5, -0.5, 0.5, 0.0, 0.0]),
        # leave-one-out: 1 - mean(0, 0, 1) = 2/3 ; 0 - mean(1, 0, 1) = -2/3
        ("rloo", [2 / 3, -2 / 3, -2 / 3, 2 / 3, 0.0, 0.0]),
    ],
)
def test_group_estimators_broadcast_the_group_baseline_to_every_token(
    name: str, per_seq: list[float]
) -> None:
    result = compute_advantages(_group_batch(), AlgoConfig(name=name), seed=0)
    expected = np.repeat(per_seq, np.diff(GROUP_OFFSETS))
    np.testing.assert_allclose(result.advantages, expected, rtol=1e-4, atol=1e-5)
    assert result.returns is None and result.values is None and result.value_std is None
    assert result.adv_keep.all() and result.ent_keep.all()


# --- REINFORCE++ -------------------------------------------------------------------------------
def _whitened(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std(ddof=1)  # the engine whitens with the unbiased variance


def test_reinforce_pp_whitens_the_reward_to_go_over_the_batch() -> None:
    rewards = np.array([0.0, 0.5, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, -1.0], dtype=np.float32)
    result = compute_advantages(
        _batch(token_rewards=rewards), AlgoConfig(name="reinforce_pp"), seed=0
    )
    reward_to_go = _reference_gae(rewards, np.zeros(10), OFFSETS, 1.0, 1.0)
    np.testing.assert_allclose(result.advantages, _whitened(reward_to_go), rtol=1e-3, atol=1e-3)


def test_reinforce_pp_discounts_the_reward_to_go_with_gamma() -> None:
    cfg = AlgoConfig(name="reinforce_pp", gamma=0.5)
    result = compute_advantages(_batch(), cfg, seed=0)
    # per response: [1/8, 1/4, 1/2, 1], [0, 0, 0], [1/4, 1/2, 1]
    reward_to_go = np.array([0.125, 0.25, 0.5, 1.0, 0, 0, 0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(result.advantages, _whitened(reward_to_go), rtol=1e-3, atol=1e-3)


def test_reward_side_kl_reaches_reinforce_pp() -> None:
    log_probs = np.full(10, -1.0, dtype=np.float32)
    ref_log_probs = np.linspace(-2, 0, 10).astype(np.float32)
    rewards = fold_kl_into_rewards(
        _token_rewards(SCORES, OFFSETS), log_probs, ref_log_probs, kl_coef=0.5, kind="k1"
    )
    cfg = AlgoConfig(name="reinforce_pp", kl_coef=0.5)
    result = compute_advantages(_batch(token_rewards=rewards), cfg, seed=0)
    reward_to_go = _reference_gae(rewards, np.zeros(10), OFFSETS, 1.0, 1.0)
    np.testing.assert_allclose(result.advantages, _whitened(reward_to_go), rtol=1e-3, atol=1e-3)


def test_whiten_advantages_flag_whitens_gae_but_not_returns() -> None:
    critic_values = _critic_values(2)
    plain = compute_advantages(_batch(critic_values), AlgoConfig(name="ppo"), seed=0)
    cfg = AlgoConfig(name="ppo", whiten_advantages=True)
    whitened = compute_advantages(_batch(critic_values), cfg, seed=0)
    np.testing.assert_allclose(
        whitened.advantages, _whitened(plain.advantages), rtol=1e-3, atol=1e-3
    )
    np.testing.assert_array_equal(whitened.returns, plain.returns)


def test_batch_with_inconsistent_lengths_names_the_field() -> None:
    with pytest.raises(ValueError, match="scores has shape"):
        _batch(scores=np.zeros(2, dtype=np.float32))


# --- masks end to end: packed masks -> padded loss inputs -> gradients -------------------------
def _pad(packed: np.ndarray, offsets: np.ndarray, fill: float | bool = 0) -> torch.Tensor:
    lengths = np.diff(offsets)
    out = np.full((len(lengths), lengths.max()), fill, dtype=packed.dtype)
    for row, (start, stop) in enumerate(itertools.pairwise(offsets)):
        out[row, : stop - start] = packed[start:stop]
    return torch.from_numpy(out)


def _asyppo_gradients() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(adv_keep, ent_keep, d loss / d log_probs, d loss / d entropy), packed over the T tokens."""
    result = compute_advantages(_batch(_critic_values(2, seed=5)), AlgoConfig(), seed=0)
    mask = _pad(np.ones(10, dtype=np.float32), OFFSETS)
    log_probs = _pad(np.full(10, -1.0, dtype=np.float32), OFFSETS).requires_grad_(True)
    entropy = _pad(np.full(10, 2.0, dtype=np.float32), OFFSETS).requires_grad_(True)
    inputs = PolicyLossInputs(
        log_probs,
        log_probs.detach().clone(),
        _pad(result.advantages, OFFSETS),
        mask,
        entropy=entropy,
        adv_keep=_pad(result.adv_keep, OFFSETS, True),
        ent_keep=_pad(result.ent_keep, OFFSETS, True),
    )
    loss, _ = compute_policy_loss(
        inputs, AlgoConfig(), normalizer=LossNormalizer("token-mean", 10, 3)
    )
    loss.backward()
    assert log_probs.grad is not None and entropy.grad is not None
    valid = mask > 0
    return (
        result.adv_keep,
        result.ent_keep,
        log_probs.grad[valid].numpy(),
        entropy.grad[valid].numpy(),
    )


def test_entropy_filter_removes_exactly_the_tokens_the_engine_marked() -> None:
    _, ent_keep, _, entropy_grad = _asyppo_gradients()
    assert (~ent_keep).sum() == 2  # floor(0.2 * 10)
    np.testing.assert_array_equal(entropy_grad == 0, ~ent_keep)
    np.testing.assert_allclose(entropy_grad[ent_keep], -0.01 / 10)


def test_advantage_mask_zeroes_the_policy_gradient_exactly_on_marked_tokens() -> None:
    adv_keep, _, log_prob_grad, _ = _asyppo_gradients()
    assert (~adv_keep).sum() == 2
    assert (log_prob_grad[~adv_keep] == 0).all()
    assert (log_prob_grad[adv_keep] != 0).all()
