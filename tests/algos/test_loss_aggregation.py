"""Token aggregation modes, hand-computed, and the LossNormalizer's checks and counts."""

from __future__ import annotations

import pytest
import torch
from asyppo.algos import AlgoConfig, LossNormalizer, aggregate_loss

# Two sequences: lengths 3 and 1 (second row padded), per-token losses below.
LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


def test_token_mean_divides_by_the_global_token_count() -> None:
    normalizer = LossNormalizer("token-mean", global_tokens=8, global_sequences=4)
    assert aggregate_loss(LOSS, MASK, normalizer).item() == pytest.approx((1 + 2 + 3 + 4) / 8)


def test_seq_mean_token_mean_averages_per_sequence_means() -> None:
    normalizer = LossNormalizer("seq-mean-token-mean", global_tokens=8, global_sequences=4)
    assert aggregate_loss(LOSS, MASK, normalizer).item() == pytest.approx((2.0 + 4.0) / 4)


def test_seq_mean_token_sum_norm_divides_sums_by_the_constant() -> None:
    normalizer = LossNormalizer(
        "seq-mean-token-sum-norm", global_tokens=8, global_sequences=4, constant=10.0
    )
    assert aggregate_loss(LOSS, MASK, normalizer).item() == pytest.approx((6 / 10 + 4 / 10) / 4)


def test_padding_values_are_ignored_even_when_not_finite() -> None:
    loss = LOSS.clone()
    loss[1, 1:] = float("nan")
    normalizer = LossNormalizer("token-mean", global_tokens=4, global_sequences=2)
    assert aggregate_loss(loss, MASK, normalizer).item() == pytest.approx(2.5)


def test_from_masks_counts_tokens_and_nonempty_rows_over_micro_batches() -> None:
    masks = [MASK, torch.tensor([[1.0, 1.0], [0.0, 0.0]])]
    normalizer = LossNormalizer.from_masks(masks, AlgoConfig(name="drgrpo"), max_response_length=16)
    assert (normalizer.global_tokens, normalizer.global_sequences) == (6, 3)
    assert (normalizer.mode, normalizer.constant) == ("seq-mean-token-sum-norm", 16.0)


def test_configured_constant_wins_over_max_response_length() -> None:
    cfg = AlgoConfig(name="drgrpo", loss_agg_constant=100.0)
    assert LossNormalizer.from_masks([MASK], cfg, max_response_length=16).constant == 100.0


def test_sum_norm_without_constant_is_rejected() -> None:
    with pytest.raises(ValueError, match="needs a positive constant"):
        LossNormalizer("seq-mean-token-sum-norm", global_tokens=1, global_sequences=1)


def test_unknown_mode_lists_valid_modes() -> None:
    with pytest.raises(ValueError, match="token-mean, seq-mean-token-mean"):
        LossNormalizer("sum", global_tokens=1, global_sequences=1)


def test_zero_token_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="global_tokens"):
        LossNormalizer("token-mean", global_tokens=0, global_sequences=1)


def test_mismatched_loss_and_mask_shapes_are_rejected() -> None:
    normalizer = LossNormalizer("token-mean", global_tokens=1, global_sequences=1)
    with pytest.raises(ValueError, match=r"loss \(2, 3\), mask \(2, 2\)"):
        aggregate_loss(LOSS, MASK[:, :2], normalizer)
