"""KL divergence to a reference policy: per-token estimators, as a loss term or a reward penalty.

Off by default (AsyPPO appendix A.3: ``init_kl_coef: 0``); enabled with ``kl_coef > 0``.
"""

from __future__ import annotations

import numpy as np
import torch

KL_ESTIMATORS: tuple[str, ...] = ("k1", "k3")


def kl_estimate(
    log_probs: torch.Tensor, ref_log_probs: torch.Tensor, kind: str = "k1"
) -> torch.Tensor:
    """Per-token estimate of KL(π_θ || π_ref) from samples of π_θ.

    With d = log π_ref(a_t) − log π_θ(a_t) (J. Schulman, "Approximating KL divergence", 2020):

    * ``k1`` = −d = log π_θ − log π_ref: unbiased, high variance, can be negative;
    * ``k3`` = exp(d) − d − 1: unbiased, low variance, always ≥ 0 (GRPO's choice,
      arXiv 2402.03300 eq. 4).

    Args:
        log_probs, ref_log_probs: same shape (any), float; log-probs of the sampled tokens.
        kind: ``"k1"`` or ``"k3"``.

    Returns:
        Tensor of the same shape; gradients flow into both inputs.

    Raises:
        ValueError: unknown ``kind`` or mismatched shapes.
    """
    if log_probs.shape != ref_log_probs.shape:
        raise ValueError(
            f"log_probs {tuple(log_probs.shape)} and ref_log_probs "
            f"{tuple(ref_log_probs.shape)} must have the same shape"
        )
    if kind == "k1":
        return log_probs - ref_log_probs
    if kind == "k3":
        d = ref_log_probs - log_probs
        return torch.expm1(d) - d
    raise ValueError(f"kl kind must be one of {', '.join(KL_ESTIMATORS)}; got {kind!r}")


def fold_kl_into_rewards(
    token_rewards: np.ndarray,
    log_probs: np.ndarray,
    ref_log_probs: np.ndarray,
    *,
    kl_coef: float,
    kind: str = "k1",
) -> np.ndarray:
    """Token rewards with the KL penalty folded in: r'_t = r_t − kl_coef · KL_t.

    The reward-side KL of RLHF PPO (Ouyang et al. 2022, arXiv 2203.02155 eq. 2) and REINFORCE++
    (arXiv 2501.03262): run it on the packed rewards before :func:`compute_advantages`.

    Args:
        token_rewards: float32 ``[T]`` packed per-token rewards.
        log_probs: ``[T]`` behaviour (rollout) log-probs of the sampled tokens.
        ref_log_probs: ``[T]`` reference-policy log-probs of the same tokens.
        kl_coef: ≥ 0.
        kind: ``"k1"`` or ``"k3"`` (see :func:`kl_estimate`).

    Returns:
        New float32 ``[T]`` array; the inputs are not modified.
    """
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    rewards = np.asarray(token_rewards, dtype=np.float32)
    if rewards.shape != np.shape(log_probs):
        raise ValueError(
            f"token_rewards {rewards.shape} and log_probs {np.shape(log_probs)} must match"
        )
    kl = kl_estimate(
        torch.as_tensor(np.asarray(log_probs, dtype=np.float32)),
        torch.as_tensor(np.asarray(ref_log_probs, dtype=np.float32)),
        kind,
    ).numpy()
    return rewards - np.float32(kl_coef) * kl
