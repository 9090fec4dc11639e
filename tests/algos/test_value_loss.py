"""Value loss 0.5 (V - R)^2 with optional clipping around the old values, hand-computed."""

from __future__ import annotations

import pytest
import torch
from asyppo.algos import AlgoConfig, LossNormalizer, compute_value_loss

VALUES = torch.tensor([[1.0, 0.0, 2.0], [0.5, 7.0, 7.0]])
RETURNS = torch.tensor([[0.0, 1.0, 1.0], [1.5, 0.0, 0.0]])
OLD = torch.tensor([[0.8, 0.0, 1.0], [0.5, 0.0, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
NORM = LossNormalizer("token-mean", global_tokens=4, global_sequences=2)


def test_unclipped_loss_is_half_mean_squared_error() -> None:
    loss, metrics = compute_value_loss(VALUES, RETURNS, MASK, None, AlgoConfig(), normalizer=NORM)
    assert loss.item() == pytest.approx(0.5 * (1 + 1 + 1 + 1) / 4)
    assert metrics["critic/loss"] == pytest.approx(0.5)


def test_clipped_loss_takes_the_larger_error() -> None:
    # value_clip 0.1: V_clip = [0.9, 0.0, 1.1, 0.5]; errors^2 = [0.81, 1, 0.01, 1] vs [1, 1, 1, 1].
    cfg = AlgoConfig(value_clip=0.1)
    loss, metrics = compute_value_loss(VALUES, RETURNS, MASK, OLD, cfg, normalizer=NORM)
    assert loss.item() == pytest.approx(0.5 * (1 + 1 + 1 + 1) / 4)
    assert metrics["critic/clip_frac"] == 0.0


def test_clipping_binds_when_the_clipped_value_is_further_from_the_return() -> None:
    values = torch.tensor([[1.0]], requires_grad=True)
    old = torch.tensor([[0.0]])
    returns = torch.tensor([[2.0]])
    norm = LossNormalizer("token-mean", global_tokens=1, global_sequences=1)
    loss, metrics = compute_value_loss(
        values, returns, torch.ones(1, 1), old, AlgoConfig(value_clip=0.5), normalizer=norm
    )
    assert loss.item() == pytest.approx(0.5 * 1.5**2)
    assert metrics["critic/clip_frac"] == 1.0
    loss.backward()
    assert values.grad is not None and values.grad.item() == 0.0


def test_gradient_is_v_minus_r_over_token_count() -> None:
    values = VALUES.clone().requires_grad_(True)
    loss, _ = compute_value_loss(values, RETURNS, MASK, None, AlgoConfig(), normalizer=NORM)
    loss.backward()
    assert values.grad is not None
    expected = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 0.0, 0.0]]) / 4
    assert torch.allclose(values.grad, expected)


def test_clipping_without_old_values_is_rejected() -> None:
    with pytest.raises(ValueError, match="needs old_values"):
        compute_value_loss(VALUES, RETURNS, MASK, None, AlgoConfig(value_clip=0.2), normalizer=NORM)


def test_shape_mismatch_names_the_argument() -> None:
    with pytest.raises(ValueError, match="returns has shape"):
        compute_value_loss(VALUES, RETURNS[:, :2], MASK, None, AlgoConfig(), normalizer=NORM)
