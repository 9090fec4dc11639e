"""``AlgoConfig``: every knob of the RL objective, in one typed schema.

The trainer's config embeds this model as its ``algo:`` section, so the YAML keys, the CLI
overrides (``algo.clip_high=0.28``) and ``docs/algo_config.md`` all describe the same fields.

``name`` picks a preset (one of :data:`PRESETS`) that fills the preset-dependent fields
(:data:`PRESET_KEYS`); a field given explicitly always wins over the preset::

    AlgoConfig(name="dapo")                      # GRPO advantages, clip-higher 0.2/0.28, ...
    AlgoConfig(name="dapo", clip_high=0.3)       # same, but clip_high 0.3

The field defaults below are those of the default preset, ``asyppo`` (AsyPPO, arXiv 2510.01656,
appendix A.3: gamma = lambda = 1, mean value aggregation, 20 % advantage masking, 20 % entropy
filtering, entropy coefficient 0.01, no KL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from asyppo.algos.advantages import ADVANTAGE_ESTIMATORS
from asyppo.algos.aggregation import LossAgg
from asyppo.algos.policy_losses import POLICY_LOSSES

#: Fields whose defaults depend on the preset; every preset sets all of them.
PRESET_KEYS: tuple[str, ...] = (
    "adv_estimator",
    "policy_loss",
    "loss_agg",
    "clip_low",
    "clip_high",
    "adv_mask_ratio",
    "ent_filter_ratio",
    "entropy_coef",
    "kl_estimator",
    "kl_mode",
    "dynamic_sampling",
)


def _preset(
    adv_estimator: str,
    policy_loss: str,
    loss_agg: str,
    *,
    clip_high: float = 0.2,
    masks: float = 0.0,
    entropy_coef: float = 0.0,
    kl_estimator: str = "k3",
    kl_mode: str = "loss",
    dynamic_sampling: bool = False,
) -> dict[str, Any]:
    return {
        "adv_estimator": adv_estimator,
        "policy_loss": policy_loss,
        "loss_agg": loss_agg,
        "clip_low": 0.2,
        "clip_high": clip_high,
        "adv_mask_ratio": masks,
        "ent_filter_ratio": masks,
        "entropy_coef": entropy_coef,
        "kl_estimator": kl_estimator,
        "kl_mode": kl_mode,
        "dynamic_sampling": dynamic_sampling,
    }


#: Preset name -> values of :data:`PRESET_KEYS`. Sources are in ``docs/algo_config.md``.
PRESETS: dict[str, dict[str, Any]] = {
    # AsyPPO (arXiv 2510.01656, eq. 5 and A.3): GAE on mean critic value, 20 % / 20 % masks.
    "asyppo": _preset(
        "gae",
        "asyppo",
        "token-mean",
        masks=0.2,
        entropy_coef=0.01,
        kl_estimator="k1",
        kl_mode="reward",
    ),
    # Classic PPO (Schulman et al. 2017) with GAE; KL, when enabled, folded into the reward.
    "ppo": _preset("gae", "ppo", "token-mean", kl_estimator="k1", kl_mode="reward"),
    # GRPO (DeepSeekMath, arXiv 2402.03300 §4.1): group-normalised outcome advantage,
    # per-sequence token mean, k3 KL as a loss term (off: kl_coef 0).
    "grpo": _preset("grpo", "ppo", "seq-mean-token-mean"),
    # Dr. GRPO (arXiv 2503.20783 §3.2): no std division, constant length normaliser.
    "drgrpo": _preset("drgrpo", "ppo", "seq-mean-token-sum-norm"),
    # DAPO (arXiv 2503.14476 §3): clip-higher 0.2/0.28, token-level mean, dynamic sampling.
    "dapo": _preset("grpo", "ppo", "token-mean", clip_high=0.28, dynamic_sampling=True),
    # ASPO (arXiv 2510.06062): flipped IS weight for positive tokens, soft dual clip.
    "aspo": _preset("grpo", "aspo", "token-mean"),
    # ASymPO and SPO: response-level current-policy-only objectives, mean over responses.
    "asympo": _preset("grpo", "asympo", "seq-mean-token-mean"),
    "spo": _preset("grpo", "spo", "seq-mean-token-mean"),
    # RLOO (Ahmadian et al. 2024, arXiv 2402.14740): leave-one-out baseline.
    "rloo": _preset("rloo", "ppo", "token-mean"),
    # REINFORCE++ (arXiv 2501.03262): reward-to-go, batch-whitened; KL folded into the reward.
    "reinforce_pp": _preset(
        "reinforce_pp", "ppo", "token-mean", kl_estimator="k1", kl_mode="reward"
    ),
}


class AlgoConfig(BaseModel):
    """Every knob of the objective: estimator, policy/value loss, masks, entropy, KL, aggregation.

    Immutable; build a variant with ``AlgoConfig(**cfg.model_dump(), clip_high=0.3)`` style
    re-validation (``model_dump`` output re-validates to an equal config).

    Raises:
        pydantic.ValidationError (a ``ValueError``): unknown key, unknown preset / estimator /
            loss name (the message lists the valid names), or a value outside its range.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        "asyppo",
        description="Preset that fills the preset-dependent fields: one of "
        + ", ".join(PRESETS)
        + ". Explicit fields override it.",
    )

    # --- advantage estimation -------------------------------------------------------------
    adv_estimator: str = Field(
        "gae",
        description="Registered advantage estimator: gae (critic values), grpo, drgrpo, rloo "
        "(group baselines), reinforce_pp. Preset-dependent.",
    )
    gamma: float = Field(1.0, ge=0.0, le=1.0, description="Discount γ (AsyPPO A.3: 1.0).")
    lam: float = Field(1.0, ge=0.0, le=1.0, description="GAE λ (AsyPPO A.3: 1.0).")
    value_agg: Literal["mean", "min"] = Field(
        "mean",
        description="How per-critic values are combined into V̄ (AsyPPO eq. 3 uses mean; §5 "
        "finds mean better than min).",
    )
    whiten_advantages: bool = Field(
        False,
        description="Whiten token advantages over the batch (zero mean, unit variance) after "
        "estimation. REINFORCE++ always whitens, independent of this flag.",
    )
    group_adv_eps: float = Field(1e-6, gt=0.0, description="ε in GRPO's (r - mean) / (std + ε).")
    dynamic_sampling: bool = Field(
        False,
        description="DAPO dynamic sampling (arXiv 2503.14476 §3.2): the trainer drops prompt "
        "groups whose rewards are all equal (zero group advantage). Preset-dependent (dapo).",
    )

    # --- critic-uncertainty masks (AsyPPO §4.2) ---------------------------------------------
    adv_mask_ratio: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="k: fraction of tokens with the lowest critic std whose advantage is "
        "masked (AsyPPO eq. 4; 0.2). Needs ≥ 2 critics. Preset-dependent.",
    )
    ent_filter_ratio: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="h: fraction of tokens with the highest critic std removed from the "
        "entropy bonus (AsyPPO eq. 5; 0.2). Needs ≥ 2 critics. Preset-dependent.",
    )
    mask_scope: Literal["batch", "group", "sequence"] = Field(
        "batch",
        description="Population over which the k / h fractions are counted: the whole batch "
        "(AsyPPO: all tokens O of the batch), each prompt group, or each response.",
    )

    # --- policy loss --------------------------------------------------------------------------
    policy_loss: str = Field(
        "asyppo",
        description="Registered policy loss: ppo, asyppo, aspo, asympo, spo. Preset-dependent.",
    )
    clip_low: float = Field(
        0.2, ge=0.0, lt=1.0, description="ε_low: ratio clipped below at 1 - ε_low."
    )
    clip_high: float = Field(
        0.2,
        ge=0.0,
        description="ε_high: ratio clipped above at 1 + ε_high (DAPO clip-higher: 0.28).",
    )
    clip_c: float | None = Field(
        3.0,
        gt=1.0,
        description="Dual-clip c (Ye et al. 2020, arXiv 1912.09729): for A < 0 the per-token "
        "loss is capped at -c·A. None disables.",
    )
    entropy_coef: float = Field(
        0.01,
        ge=0.0,
        description="β of the entropy bonus (AsyPPO A.3: 0.01). Entropy is computed only when "
        "β > 0 or it is logged. Preset-dependent.",
    )
    loss_agg: LossAgg = Field(
        "token-mean",
        description="Token aggregation: token-mean (global valid-token count of the "
        "mini-batch), seq-mean-token-mean (GRPO), seq-mean-token-sum-norm (Dr. GRPO). "
        "Preset-dependent.",
    )
    loss_agg_constant: float | None = Field(
        None,
        gt=0.0,
        description="Denominator constant of seq-mean-token-sum-norm (Dr. GRPO uses the "
        "maximum response length). None: the trainer uses its max_new_tokens.",
    )
    aspo_eps_low: float = Field(
        0.2, ge=0.0, lt=1.0, description="ASPO: A < 0 tokens with r < 1 - ε_low get weight 0."
    )
    aspo_eps_high: float = Field(
        0.2, ge=0.0, description="ASPO: A ≥ 0 tokens with r > 1 + ε_high get weight 0."
    )
    aspo_cap: float = Field(
        3.0, gt=1.0, description="ASPO soft dual clip: the IS weight is capped at c."
    )
    asympo_eps: float = Field(
        1e-6,
        gt=0.0,
        description="ASymPO: the stop-gradient mean NLL denominator is clamped at ε.",
    )
    spo_neg_scale: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="SPO: fixed scale C applied to the loss of negative-advantage responses.",
    )

    # --- value loss ---------------------------------------------------------------------------
    value_clip: float | None = Field(
        None,
        gt=0.0,
        description="Clip V within ± value_clip of the old values in the value loss "
        "(PPO2-style). None disables (default).",
    )

    # --- KL to a reference policy -------------------------------------------------------------
    kl_coef: float = Field(
        0.0, ge=0.0, description="KL coefficient (AsyPPO A.3: init_kl_coef 0, so off)."
    )
    kl_estimator: Literal["k1", "k3"] = Field(
        "k1",
        description="KL estimator (Schulman 2020, 'Approximating KL divergence'): k1 = log π − "
        "log π_ref, k3 = exp(log π_ref − log π) − (log π_ref − log π) − 1. Preset-dependent.",
    )
    kl_mode: Literal["loss", "reward"] = Field(
        "reward",
        description="Where the KL goes: 'loss' adds kl_coef·KL to the policy loss; 'reward' "
        "subtracts it from the token rewards before estimation. Preset-dependent.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        name = data.get("name", "asyppo")
        if name not in PRESETS:
            raise ValueError(
                f"unknown algo preset name {name!r}; valid names: {', '.join(PRESETS)}"
            )
        return {**PRESETS[name], **data}

    @field_validator("adv_estimator")
    @classmethod
    def _known_estimator(cls, value: str) -> str:
        return ADVANTAGE_ESTIMATORS.check(value)

    @field_validator("policy_loss")
    @classmethod
    def _known_policy_loss(cls, value: str) -> str:
        return POLICY_LOSSES.check(value)

    @model_validator(mode="after")
    def _masks_need_critics(self) -> AlgoConfig:
        if not self.uses_critic and (self.adv_mask_ratio > 0 or self.ent_filter_ratio > 0):
            raise ValueError(
                "adv_mask_ratio and ent_filter_ratio are set by the critics' value std and need "
                f"a critic-based adv_estimator (got {self.adv_estimator!r} with "
                f"adv_mask_ratio={self.adv_mask_ratio}, ent_filter_ratio="
                f"{self.ent_filter_ratio}); set both to 0"
            )
        return self

    @model_validator(mode="after")
    def _masks_fit_in_one_population(self) -> AlgoConfig:
        # The k lowest-std and h highest-std fractions are disjoint sets of the same tokens
        # (engine.percentile_masks), so together they cannot exceed all of them.
        if self.adv_mask_ratio + self.ent_filter_ratio > 1.0:
            raise ValueError(
                f"adv_mask_ratio + ent_filter_ratio must be at most 1 (they pick disjoint sets of "
                f"tokens), got {self.adv_mask_ratio} + {self.ent_filter_ratio}"
            )
        return self

    @model_validator(mode="after")
    def _reward_kl_reaches_estimator(self) -> AlgoConfig:
        uses_rewards = ADVANTAGE_ESTIMATORS.attr(self.adv_estimator, "uses_token_rewards", False)
        if self.kl_coef > 0 and self.kl_mode == "reward" and not uses_rewards:
            raise ValueError(
                f"kl_mode='reward' folds the KL into token rewards, but adv_estimator "
                f"{self.adv_estimator!r} reads only the sequence scores; use kl_mode='loss'"
            )
        return self

    @property
    def uses_critic(self) -> bool:
        """Whether the advantage estimator consumes critic values (the trainer then runs critics)."""
        return bool(ADVANTAGE_ESTIMATORS.attr(self.adv_estimator, "uses_critic", False))
