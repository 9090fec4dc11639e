"""KL estimators k1 / k3, hand-computed, and the reward-side fold."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from asyppo.algos import fold_kl_into_rewards, kl_estimate

LOGP = torch.tensor([-1.0, -2.0, -0.5])
REF = torch.tensor([-1.5, -1.0, -0.5])


def test_k1_is_the_log_ratio() -> None:
    assert torch.allclose(kl_estimate(LOGP, REF, "k1"), torch.tensor([0.5, -1.0, 0.0]))


def test_k3_is_exp_d_minus_d_minus_one() -> None:
    d = [-0.5, 1.0, 0.0]
    expected = torch.tensor([math.exp(x) - x - 1 for x in d])
    assert torch.allclose(kl_estimate(LOGP, REF, "k3"), expected)


def test_k3_is_never_negative() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, generator=gen), torch.randn(1000, generator=gen)
    assert (kl_estimate(a, b, "k3") >= 0).all()


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="k1, k3"):
        kl_estimate(LOGP, REF, "k2")


def test_fold_subtracts_coef_times_kl_from_rewards() -> None:
    rewards = np.array([0.0, 0.0, 1.0], dtype=np.float32)
    folded = fold_kl_into_rewards(rewards, LOGP.numpy(), REF.numpy(), kl_coef=0.1, kind="k1")
    np.testing.assert_allclose(folded, [-0.05, 0.1, 1.0], rtol=1e-6)
    assert folded.dtype == np.float32
    assert rewards[0] == 0.0  # input untouched


def test_fold_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="token_rewards"):
        fold_kl_into_rewards(np.zeros(2, np.float32), LOGP.numpy(), REF.numpy(), kl_coef=0.1)
