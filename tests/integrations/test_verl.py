"""The verl adapter against the real verl (``verl.trainer.ppo.core_algos``, verl 0.9.1).

Every estimator is compared with verl's own function on random padded batches that contain
empty, length-1 and full rows, single-turn (prefix) and multi-turn (gapped) response masks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("verl", reason="the verl extra is not installed: pip install '.[verl]'")

import verl.utils.torch_functional as verl_F
from asyppo.algos import (
    AdvantageBatch,
    AlgoConfig,
    LossNormalizer,
    aggregate_loss,
    compute_advantages,
)
from asyppo.algos.policy_losses import PolicyLossInputs, asyppo_loss
from asyppo.integrations import verl as adapter
from integ_batches import make_batch
from verl.trainer.config import AlgoConfig as VerlAlgoConfig
from verl.trainer.ppo import core_algos
from verl.workers.config import ActorConfig

VERL_GAE = core_algos.compute_gae_advantage_return  # kept before any test replaces it

LAYOUTS = ["prefix", "multiturn"]
# float32: verl accumulates its statistics in float32, the engine in float64. float64: verl's
# masked mean divides by (count + 1e-8), a relative 1e-8 / count off the exact mean.
TOL = {torch.float32: {"rtol": 1e-5, "atol": 2e-5}, torch.float64: {"rtol": 1e-9, "atol": 1e-9}}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 1.0), (0.99, 0.95), (0.0, 0.5)])
def test_gae_equals_verl(layout: str, dtype: torch.dtype, gamma: float, lam: float) -> None:
    b = make_batch(1, 24, 17, layout, dtype)
    ours = adapter.compute_gae_advantage_return(b.rewards, b.values, b.mask, gamma, lam)
    theirs = VERL_GAE(b.rewards, b.values, b.mask, gamma, lam)
    for mine, ref in zip(ours, theirs, strict=True):
        assert mine.dtype == ref.dtype and mine.shape == ref.shape
        torch.testing.assert_close(mine, ref, **TOL[dtype])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("norm", [True, False])
def test_grpo_equals_verl(layout: str, norm: bool) -> None:
    b = make_batch(2, 40, 9, layout, torch.float32)
    ours = adapter.compute_grpo_outcome_advantage(b.rewards, b.mask, b.index, 1e-6, norm)
    theirs = core_algos.compute_grpo_outcome_advantage(
        b.rewards.clone(), b.mask, b.index, 1e-6, norm
    )
    torch.testing.assert_close(ours[0], theirs[0], **TOL[torch.float32])
    torch.testing.assert_close(ours[1], theirs[1], **TOL[torch.float32])


def test_drgrpo_is_grpo_without_std() -> None:
    b = make_batch(3, 30, 6, "prefix", torch.float32)
    ours = adapter.compute_drgrpo_outcome_advantage(b.rewards, b.mask, b.index)
    theirs = core_algos.compute_grpo_outcome_advantage(
        b.rewards.clone(), b.mask, b.index, norm_adv_by_std_in_grpo=False
    )
    torch.testing.assert_close(ours[0], theirs[0], **TOL[torch.float32])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_rloo_equals_verl(layout: str) -> None:
    b = make_batch(4, 40, 9, layout, torch.float32)
    ours = adapter.compute_rloo_outcome_advantage(b.rewards, b.mask, b.index)
    theirs = core_algos.compute_rloo_outcome_advantage(b.rewards.clone(), b.mask, b.index)
    torch.testing.assert_close(ours[0], theirs[0], **TOL[torch.float32])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_reinforce_plus_plus_equals_verl(layout: str, gamma: float) -> None:
    b = make_batch(5, 24, 13, layout, torch.float32)
    config = VerlAlgoConfig(gamma=gamma)
    ours = adapter.compute_reinforce_plus_plus_outcome_advantage(b.rewards, b.mask, config)
    theirs = core_algos.compute_reinforce_plus_plus_outcome_advantage(b.rewards, b.mask, config)
    for mine, ref in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, ref, **TOL[torch.float32])


@pytest.mark.parametrize("shift_mean", [True, False])
def test_masked_whiten_equals_verl(shift_mean: bool) -> None:
    b = make_batch(6, 16, 11, "multiturn", torch.float32)
    ours = adapter.masked_whiten(b.values, b.mask, shift_mean)
    torch.testing.assert_close(
        ours, verl_F.masked_whiten(b.values, b.mask, shift_mean), **TOL[torch.float32]
    )


@pytest.mark.parametrize("n_tokens", [0, 1])
def test_whitening_fewer_than_two_tokens_raises_like_verl(n_tokens: int) -> None:
    b = make_batch(7, 4, 5, "prefix", torch.float32)
    mask = torch.zeros_like(b.mask)
    mask[2, :n_tokens] = 1
    with pytest.raises(ValueError):
        VERL_GAE(b.rewards, b.values, mask, 1.0, 1.0)
    with pytest.raises(ValueError, match="mask"):
        adapter.compute_gae_advantage_return(b.rewards, b.values, mask, 1.0, 1.0)


def test_bad_arguments_are_named() -> None:
    b = make_batch(8, 6, 5, "prefix", torch.float32)
    with pytest.raises(ValueError, match="values: expected shape"):
        adapter.compute_gae_advantage_return(b.rewards, b.values[:, :4], b.mask, 1.0, 1.0)
    with pytest.raises(ValueError, match="index: expected 6 group ids"):
        adapter.compute_grpo_outcome_advantage(b.rewards, b.mask, b.index[:5])
    with pytest.raises(ValueError, match="config"):
        adapter.compute_reinforce_plus_plus_outcome_advantage(b.rewards, b.mask)
    with pytest.raises(ValueError, match="need M >= 2"):
        adapter.asyppo_advantages(b.rewards, b.values[None], b.mask)


def test_register_dispatches_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """verl's generic dispatch (``ray_trainer.compute_advantage``'s ``else`` branch) by name."""
    monkeypatch.setattr(core_algos, "compute_gae_advantage_return", VERL_GAE)
    monkeypatch.setitem(core_algos.ADV_ESTIMATOR_REGISTRY, "gae", VERL_GAE)
    adapter.register(replace_gae=True)
    adapter.register()  # idempotent
    b = make_batch(9, 20, 7, "prefix", torch.float32)
    config = VerlAlgoConfig(gamma=0.95)
    for name, reference in [
        ("asyppo_grpo", core_algos.compute_grpo_outcome_advantage),
        ("asyppo_rloo", core_algos.compute_rloo_outcome_advantage),
        ("asyppo_reinforce_plus_plus", core_algos.compute_reinforce_plus_plus_outcome_advantage),
    ]:
        kwargs = {"token_level_rewards": b.rewards, "response_mask": b.mask, "config": config}
        ours = core_algos.get_adv_estimator_fn(name)(**kwargs, index=b.index)
        theirs = reference(**{**kwargs, "token_level_rewards": b.rewards.clone()}, index=b.index)
        torch.testing.assert_close(ours[0], theirs[0], **TOL[torch.float32])
    assert core_algos.get_policy_loss_fn("asyppo") is adapter.compute_policy_loss_asyppo
    assert core_algos.compute_gae_advantage_return is adapter.compute_gae_advantage_return


def _actor_config() -> ActorConfig:
    return ActorConfig(
        strategy="fsdp", ppo_micro_batch_size_per_gpu=1, rollout_n=1, clip_ratio_high=0.28
    )


def _policy_batch(seed: int) -> tuple[torch.Tensor, ...]:
    b = make_batch(seed, 12, 10, "prefix", torch.float32)
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(b.mask.shape, generator=g) * 3
    new = (old + 0.3 * torch.randn(b.mask.shape, generator=g)).requires_grad_()
    entropy = torch.rand(b.mask.shape, generator=g).requires_grad_()
    keep = torch.rand(2, *b.mask.shape, generator=g) > 0.2
    return old, new, b.rewards, b.mask, entropy, keep[0], keep[1]


@pytest.mark.parametrize(
    ("verl_mode", "our_mode"),
    [("token-mean", "token-mean"), ("seq-mean-token-mean", "seq-mean-token-mean")],
)
def test_policy_loss_called_as_verls_actor_loss_calls_it(verl_mode: str, our_mode: str) -> None:
    """By name and with the keywords of verl's stock ``ppo_loss`` (no masks, no entropy), on
    advantages with I^A folded in: asyppo.algos' AsyPPO loss without entropy, same aggregation."""
    adapter.register()
    old, new, adv, mask, _, adv_keep, _ = _policy_batch(10)
    loss_fn = core_algos.get_policy_loss_fn("asyppo")
    ours, metrics = loss_fn(
        old_log_prob=old,
        log_prob=new,
        advantages=adv * adv_keep,
        response_mask=mask,
        loss_agg_mode=verl_mode,
        config=_actor_config(),
        rollout_is_weights=None,
    )
    cfg = AlgoConfig(name="asyppo", clip_high=0.28, clip_c=3.0, entropy_coef=0.0, loss_agg=our_mode)
    per_token, _ = asyppo_loss(PolicyLossInputs(new, old, adv, mask, adv_keep=adv_keep), cfg)
    reference = aggregate_loss(per_token, mask, LossNormalizer.from_masks([mask], cfg))
    torch.testing.assert_close(ours, reference)
    assert metrics["actor/adv_masked_frac"] == 0.0  # the mask reached verl inside the advantages


def test_policy_loss_with_masks_is_asyppos_loss() -> None:
    """verl's clipping + token-mean aggregation with both masks = asyppo.algos' AsyPPO loss."""
    old, new, adv, mask, entropy, adv_keep, ent_keep = _policy_batch(11)
    ours, metrics = adapter.compute_policy_loss_asyppo(
        old,
        new,
        adv,
        mask,
        "token-mean",
        _actor_config(),
        adv_keep=adv_keep,
        entropy=entropy,
        ent_keep=ent_keep,
        entropy_coeff=0.01,
    )
    cfg = AlgoConfig(name="asyppo", clip_low=0.2, clip_high=0.28, clip_c=3.0, entropy_coef=0.01)
    inputs = PolicyLossInputs(new, old, adv, mask, entropy, adv_keep, ent_keep)
    per_token, _ = asyppo_loss(inputs, cfg)
    reference = (per_token * mask).sum() / mask.sum()
    torch.testing.assert_close(ours, reference)
    grads = torch.autograd.grad(ours, (new, entropy))
    ref_grads = torch.autograd.grad(reference, (new, entropy))
    for mine, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(mine, ref)
    valid = mask.bool()
    assert metrics["actor/adv_masked_frac"] == pytest.approx(
        float((~adv_keep & valid).sum() / valid.sum())
    )


@pytest.mark.parametrize("scope", ["batch", "sequence", "group"])
def test_asyppo_advantages_equal_the_packed_estimator(scope: str) -> None:
    b = make_batch(12, 16, 9, "prefix", torch.float32)
    critics = torch.stack([b.values, b.values + 0.5 * torch.randn_like(b.values)])
    out = adapter.asyppo_advantages(b.rewards, critics, b.mask, mask_scope=scope, index=b.index)
    valid = b.mask.bool()
    lengths = valid.sum(dim=1)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    _, group_ids = np.unique(b.index, return_inverse=True)
    packed = AdvantageBatch(
        offsets.numpy(),
        b.rewards[valid].numpy(),
        b.rewards.sum(dim=1).numpy(),
        group_ids,
        critics[:, valid].numpy(),
    )
    ref = compute_advantages(packed, AlgoConfig(name="asyppo", mask_scope=scope), seed=0)
    torch.testing.assert_close(out.advantages[valid], torch.from_numpy(ref.advantages))
    torch.testing.assert_close(out.returns[valid], torch.from_numpy(ref.returns))
    assert torch.equal(out.adv_keep[valid], torch.from_numpy(ref.adv_keep))
    assert torch.equal(out.ent_keep[valid], torch.from_numpy(ref.ent_keep))
    assert not out.adv_keep[~valid].any() and float(out.advantages[~valid].abs().sum()) == 0.0


def test_asyppo_advantages_with_one_critic_are_verls_gae() -> None:
    b = make_batch(13, 16, 9, "prefix", torch.float32)
    out = adapter.asyppo_advantages(
        b.rewards,
        b.values[None],
        b.mask,
        gamma=0.99,
        lam=0.95,
        adv_mask_ratio=0,
        ent_filter_ratio=0,
    )
    advantages, returns = VERL_GAE(b.rewards, b.values, b.mask, 0.99, 0.95)
    valid = b.mask.bool()
    torch.testing.assert_close(out.returns[valid], returns[valid])
    torch.testing.assert_close(
        verl_F.masked_whiten(out.advantages, b.mask)[valid], advantages[valid]
    )


def test_verls_external_modules_hook_registers_everything() -> None:
    """With ``VERL_USE_EXTERNAL_MODULES=asyppo.integrations.verl_register``, importing verl
    registers every name."""
    import os
    import subprocess
    import sys

    code = (
        "import verl\n"
        "from verl.trainer.ppo import core_algos\n"
        "print(sorted(k for k in core_algos.ADV_ESTIMATOR_REGISTRY if k.startswith('asyppo')),"
        " 'asyppo' in core_algos.POLICY_LOSS_REGISTRY)\n"
    )
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "asyppo.integrations.verl_register"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == str(sorted(adapter.ADV_ESTIMATORS)) + " True"
