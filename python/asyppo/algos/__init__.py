"""The RL objective: advantage estimators, policy / value losses, KL, entropy and aggregation.

Everything is selected by name from :class:`AlgoConfig` (the trainer's ``algo:`` section);
formulas and sources are in each function's docstring and in ``docs/algo_config.md``.
"""

from __future__ import annotations

from asyppo.algos.advantages import (
    ADVANTAGE_ESTIMATORS,
    AdvantageBatch,
    AdvantageResult,
    check_critics_for_masks,
    compute_advantages,
)
from asyppo.algos.aggregation import LOSS_AGG_MODES, LossNormalizer, aggregate_loss, masked_mean
from asyppo.algos.config import PRESET_KEYS, PRESETS, AlgoConfig
from asyppo.algos.kl import KL_ESTIMATORS, fold_kl_into_rewards, kl_estimate
from asyppo.algos.logprobs import (
    entropy_from_logits,
    token_log_probs,
    token_log_probs_and_entropy,
)
from asyppo.algos.policy_losses import (
    POLICY_LOSSES,
    AspoParams,
    AsympoParams,
    PolicyLossInputs,
    SpoParams,
    compute_policy_loss,
)
from asyppo.algos.registry import Registry
from asyppo.algos.value_loss import compute_value_loss

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "KL_ESTIMATORS",
    "LOSS_AGG_MODES",
    "POLICY_LOSSES",
    "PRESETS",
    "PRESET_KEYS",
    "AdvantageBatch",
    "AdvantageResult",
    "AlgoConfig",
    "AspoParams",
    "AsympoParams",
    "LossNormalizer",
    "PolicyLossInputs",
    "Registry",
    "SpoParams",
    "aggregate_loss",
    "check_critics_for_masks",
    "compute_advantages",
    "compute_policy_loss",
    "compute_value_loss",
    "entropy_from_logits",
    "fold_kl_into_rewards",
    "kl_estimate",
    "masked_mean",
    "token_log_probs",
    "token_log_probs_and_entropy",
]
