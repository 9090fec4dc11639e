"""``AlgoConfig``: every knob of the RL objective, in one typed schema.

The trainer's config embeds this model as its ``algo:`` section, so the YAML keys, the CLI
overrides (``algo.clip_high=0.28``) and ``docs/algo_config.md`` all describe the same fields.

Where each default lives:

* ``name`` picks a preset, a row of :data:`PRESETS`. The preset is the *only* home of the keys
  it sets (:data:`PRESET_KEYS`): those fields have no default of their own. A key given
  explicitly always wins over the preset::

      AlgoConfig(name="dapo")                      # GRPO advantages, clip-higher 0.2/0.28, ...
      AlgoConfig(name="dapo", clip_high=0.3)       # same, but clip_high 0.3

* Every other field of :class:`AlgoConfig` has one default, on the field, for all presets.
* A policy loss or advantage estimator with parameters of its own registers a small pydantic
  model of them (``POLICY_LOSSES.register("aspo", params=AspoParams)``); its keys are
  ``algo:`` keys while that loss / estimator is the chosen one, validated against that model
  (defaults, ranges) and read back with :meth:`AlgoConfig.params`.

``model_fields_set`` holds the keys given explicitly; :meth:`AlgoConfig.value_sources` names the
preset behind every other preset key (``python -m asyppo config show`` prints it as a comment).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

from asyppo.algos.advantages import ADVANTAGE_ESTIMATORS
from asyppo.algos.aggregation import LossAgg
from asyppo.algos.policy_losses import POLICY_LOSSES
from asyppo.algos.registry import Registry

P = TypeVar("P", bound=BaseModel)

#: Preset name -> the values of :data:`PRESET_KEYS` (every preset sets every one of them).
#: Sources are in ``docs/algo_config.md``.
PRESETS: dict[str, dict[str, Any]] = {
    # AsyPPO (arXiv 2510.01656, eq. 5 and A.3): GAE on the mean critic value, 20 % advantage
    # masking, 20 % entropy filtering, entropy coefficient 0.01; KL (off: kl_coef 0) as reward.
    "asyppo": {
        "adv_estimator": "gae", "policy_loss": "asyppo", "loss_agg": "token-mean",
        "clip_high": 0.2, "adv_mask_ratio": 0.2, "ent_filter_ratio": 0.2, "entropy_coef": 0.01,
        "kl_estimator": "k1", "kl_mode": "reward", "dynamic_sampling": False,
    },
    # Classic PPO (Schulman et al. 2017) with GAE; KL, when enabled, folded into the reward.
    "ppo": {
        "adv_estimator": "gae", "policy_loss": "ppo", "loss_agg": "token-mean",
        "clip_high": 0.2, "adv_mask_ratio": 0.0, "ent_filter_ratio": 0.0, "entropy_coef": 0.0,
        "kl_estimator": "k1", "kl_mode": "reward", "dynamic_sampling": False,
    },
    # GRPO (DeepSeekMath, arXiv 2402.03300 §4.1): group-normalised outcome advantage,
    # per-sequence token mean, k3 KL as a loss term (off: kl_coef 0).
    "grpo": {
        "adv_estimator": "grpo", "policy_loss": "ppo", "loss_agg": "seq-mean-token-mean",
        "clip_high": 0.2, "adv_mask_ratio": 0.0, "ent_filter_ratio": 0.0, "entropy_coef": 0.0,
        "kl_estimator": "k3", "kl_mode": "loss", "dynamic_sampling": False,
    },
    # Dr. GRPO (arXiv 2503.20783 §3.2): no std division, constant length normaliser.
    "drgrpo": {
        "adv_estimator": "drgrpo", "policy_loss": "ppo", "loss_agg": "seq-mean-token-sum-norm",
        "clip_high": 0.2, "adv_mask_ratio": 0.0, "ent_filter_ratio": 0.0, "entropy_coef": 0.0,
        "kl_estimator": "k3", "kl_mode": "loss", "dynamic_sampling": False,
    },
    # DAPO (arXiv 2503.14476 §3): clip-higher 0.2/0.28, token-level mean, dynamic sampling.
    "dapo": {
        "adv_estimator": "grpo", "policy_loss": "ppo", "loss_agg": "token-mean",
        "clip_high": 0.28, "adv_mask_ratio": 0.0, "ent_filter_ratio": 0.0, "entropy_coef": 0.0,
        "kl_estimator": "k3", "kl_mode": "loss", "dynamic_sampling": True,
    },
    # ASPO (arXiv 2510.06062): flipped IS weight for positive tokens, soft dual clip.
    "aspo": {
        "adv_estimator": "grpo", "policy_loss": "aspo", "loss_agg": "token-mean",
        "clip_high": 0.2, "adv_mask_ratio": 0.0, "ent_filter_ratio": 0.0, "entropy_coef": 0.0,
        "kl_estimator": "k3", "kl_mode": "loss", "dynamic_sampling": False,
    },
    # ASymPO and SPO: response-level current-policy-only objectives, mean over responses.
    "asympo": {
        "adv_estimator": "grpo", "policy_loss": "asympo", "loss_agg": "seq-mean-token-mean",
        "clip_high": 0.2, "adv_mask_ratio": 0.0, "ent_filter_ratio": 0.0, "entropy_coef": 0.0,
        "kl_estimator": "k3", "kl_mode": "loss", "dynamic_sampling": False,
    },
    "spo": {
        "adv_estimator": "grpo", "policy_loss": "spo", "loss_agg": "seq-mean-token-mean",
        "clip_high": 0.2, "adv_mask_ratio": 0.0, "ent_filter_ratio": 0.0, "entropy_coef": 0.0,
        "kl_estimator": "k3", "kl_mode": "loss", "dynamic_sampling": False,
    },
    # RLOO (Ahmadian et al. 2024, arXiv 2402.14740): leave-one-out baseline.
    "rloo": {
        "adv_estimator": "rloo", "policy_loss": "ppo", "loss_agg": "token-mean",
        "clip_high": 0.2, "adv_mask_ratio": 0.0, "ent_filter_ratio": 0.0, "entropy_coef": 0.0,
        "kl_estimator": "k3", "kl_mode": "loss", "dynamic_sampling": False,
    },
    # REINFORCE++ (arXiv 2501.03262): reward-to-go, batch-whitened; KL folded into the reward.
    "reinforce_pp": {
        "adv_estimator": "reinforce_pp", "policy_loss": "ppo", "loss_agg": "token-mean",
        "clip_high": 0.2, "adv_mask_ratio": 0.0, "ent_filter_ratio": 0.0, "entropy_coef": 0.0,
        "kl_estimator": "k1", "kl_mode": "reward", "dynamic_sampling": False,
    },
}  # fmt: skip

#: The registries whose chosen entry (``algo.<field>``) may own parameters of its own.
_OWNERS: tuple[tuple[str, Registry[Any]], ...] = (
    ("policy_loss", POLICY_LOSSES),
    ("adv_estimator", ADVANTAGE_ESTIMATORS),
)


class AlgoConfig(BaseModel):
    """Every knob of the objective: estimator, policy/value loss, masks, entropy, KL, aggregation.

    Immutable; build a variant with ``AlgoConfig(**{**cfg.model_dump(), "clip_high": 0.3})``
    (``model_dump`` output re-validates to an equal config). The parameters of the chosen
    policy loss / estimator are extra keys of the model (``cfg.model_extra``), validated
    against the parameter model it registered; read them typed with :meth:`params`.

    Raises:
        pydantic.ValidationError (a ``ValueError``): unknown key, unknown preset / estimator /
            loss name (the message lists the valid names), a parameter of a loss or estimator
            that is not the chosen one, or a value outside its range.
    """

    # Extra keys are the chosen loss's / estimator's parameters: _resolve validates them
    # against their model and refuses every other key, so nothing unchecked gets in.
    model_config = ConfigDict(extra="allow", frozen=True)

    if TYPE_CHECKING:
        # For type checkers: every key is optional (the preset fills the fields without a
        # default) and the chosen loss's parameters are keyword arguments too.
        def __init__(self, **data: Any) -> None: ...

    name: str = Field(
        "asyppo",
        description="Preset that sets the keys marked 'From the preset' (they have no default of "
        "their own; docs/algo_config.md has the table): one of "
        + ", ".join(PRESETS)
        + ". Explicit keys override it.",
    )

    # --- advantage estimation -------------------------------------------------------------
    adv_estimator: str = Field(
        description="Registered advantage estimator: gae (critic values), grpo, drgrpo, rloo "
        "(group baselines), reinforce_pp. From the preset.",
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
        description="DAPO dynamic sampling (arXiv 2503.14476 §3.2): the trainer drops prompt "
        "groups whose rewards are all equal (zero group advantage). From the preset (dapo: on).",
    )

    # --- critic-uncertainty masks (AsyPPO §4.2) ---------------------------------------------
    adv_mask_ratio: float = Field(
        ge=0.0,
        le=1.0,
        description="k: fraction of tokens with the lowest critic std whose advantage is "
        "masked (AsyPPO eq. 4; 0.2). Needs ≥ 2 critics. From the preset (asyppo: 0.2, "
        "others 0).",
    )
    ent_filter_ratio: float = Field(
        ge=0.0,
        le=1.0,
        description="h: fraction of tokens with the highest critic std removed from the "
        "entropy bonus (AsyPPO eq. 5; 0.2). Needs ≥ 2 critics. From the preset (asyppo: 0.2, "
        "others 0).",
    )
    mask_scope: Literal["batch", "group", "sequence"] = Field(
        "batch",
        description="Population over which the k / h fractions are counted: the whole batch "
        "(AsyPPO: all tokens O of the batch), each prompt group, or each response.",
    )

    # --- policy loss --------------------------------------------------------------------------
    policy_loss: str = Field(
        description="Registered policy loss: ppo, asyppo, aspo, asympo, spo. From the preset.",
    )
    clip_low: float = Field(
        0.2, ge=0.0, lt=1.0, description="ε_low: ratio clipped below at 1 - ε_low."
    )
    clip_high: float = Field(
        ge=0.0,
        description="ε_high: ratio clipped above at 1 + ε_high. From the preset (dapo: 0.28, "
        "the others 0.2).",
    )
    clip_c: float | None = Field(
        3.0,
        gt=1.0,
        description="Dual-clip c (Ye et al. 2020, arXiv 1912.09729): for A < 0 the per-token "
        "loss is capped at -c·A. None disables.",
    )
    entropy_coef: float = Field(
        ge=0.0,
        description="β of the entropy bonus (AsyPPO A.3: 0.01). Entropy is computed only when "
        "β > 0 or it is logged. From the preset (asyppo: 0.01, others 0).",
    )
    loss_agg: LossAgg = Field(
        description="Token aggregation: token-mean (global valid-token count of the "
        "mini-batch), seq-mean-token-mean (GRPO), seq-mean-token-sum-norm (Dr. GRPO). "
        "From the preset.",
    )
    loss_agg_constant: float | None = Field(
        None,
        gt=0.0,
        description="Denominator constant of seq-mean-token-sum-norm (Dr. GRPO uses the "
        "maximum response length). None: the trainer uses its max_new_tokens.",
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
        description="KL estimator (Schulman 2020, 'Approximating KL divergence'): k1 = log π − "
        "log π_ref, k3 = exp(log π_ref − log π) − (log π_ref − log π) − 1. From the preset.",
    )
    kl_mode: Literal["loss", "reward"] = Field(
        description="Where the KL goes: 'loss' adds kl_coef·KL to the policy loss; 'reward' "
        "subtracts it from the token rewards before estimation. From the preset.",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _resolve(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> AlgoConfig:
        """Preset under the explicit keys; the rest validated as the chosen parts' parameters."""
        if not isinstance(data, Mapping):
            return handler(data)
        name = data.get("name", "asyppo")
        if not isinstance(name, str) or name not in PRESETS:
            raise ValueError(
                f"unknown algo preset name {name!r}; valid names: {', '.join(PRESETS)}"
            )
        given = {str(key): value for key, value in data.items()}
        own = {key: value for key, value in given.items() if key in cls.model_fields}
        cfg = handler({**PRESETS[name], **own})
        extra = cfg.__pydantic_extra__
        assert extra is not None  # extra="allow"
        extra.clear()
        extra.update(cfg._validate_params({k: v for k, v in given.items() if k not in own}))
        # What the caller gave, not what the preset filled: value_sources() reads it.
        object.__setattr__(cfg, "__pydantic_fields_set__", set(given))
        return cfg

    def _validate_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` (the keys that are not fields) validated against the parameter models of
        the chosen loss and estimator; returns every parameter of theirs, defaults filled in."""
        errors: list[InitErrorDetails] = []
        values: dict[str, Any] = {}
        chosen: set[str] = set()
        for field, registry in _OWNERS:
            model = registry.params(getattr(self, field))
            if model is None:
                continue
            chosen |= set(model.model_fields)
            mine = {k: v for k, v in given.items() if k in model.model_fields}
            try:
                values.update(model.model_validate(mine).model_dump())
            except ValidationError as exc:
                errors += [
                    InitErrorDetails(
                        type=PydanticCustomError(e["type"], "{msg}", {"msg": e["msg"]}),
                        loc=e["loc"],
                        input=e["input"],
                    )
                    for e in exc.errors()
                ]
        for key, value in given.items():
            if key in chosen:
                continue
            owners = _param_owners().get(key)
            if owners is None:
                errors.append(InitErrorDetails(type="extra_forbidden", loc=(key,), input=value))
                continue
            if value == owners[0].default:
                # Sets nothing: a config.yaml written before each loss owned its parameters
                # listed all of them at their defaults, and must still resume.
                continue
            field, owner = owners[1][0]
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError(
                        "param_of_another_part",
                        "a parameter of {field} {owner}, not of the chosen {field} {chosen}; "
                        "set {field}: {name} or drop the key",
                        {
                            "field": field,
                            "owner": repr(owner),
                            "name": owner,
                            "chosen": repr(getattr(self, field)),
                        },
                    ),
                    loc=(key,),
                    input=value,
                )
            )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return values

    def params(self, model: type[P]) -> P:
        """The chosen loss's / estimator's parameters as their registered ``model``."""
        extra = self.model_extra or {}
        missing = [key for key in model.model_fields if key not in extra]
        if missing:
            raise ValueError(
                f"{model.__name__} is not the parameter model of policy_loss {self.policy_loss!r} "
                f"or adv_estimator {self.adv_estimator!r} (no value for {', '.join(missing)})"
            )
        return model.model_construct(**{key: extra[key] for key in model.model_fields})

    def value_sources(self) -> dict[str, str]:
        """Key -> where its value came from, for the keys not given explicitly that have no
        default of their own: ``"preset <name>"``."""
        return {
            key: f"preset {self.name}" for key in PRESET_KEYS if key not in self.model_fields_set
        }

    @classmethod
    def param_owners(cls) -> dict[str, tuple[FieldInfo, tuple[str, str]]]:
        """Every parameter a registered loss or estimator declares: key -> (its field, the
        first (``policy_loss`` / ``adv_estimator``, name) declaring it)."""
        return {
            key: (field, owners[0]) for key, (field, owners) in _param_owners().items()
        }

    @classmethod
    def param_fields(cls) -> dict[str, FieldInfo]:
        """Every parameter a registered loss or estimator declares (key -> its field), for key
        suggestions."""
        return {key: field for key, (field, _) in _param_owners().items()}

    @field_validator("adv_estimator")
    @classmethod
    def _known_estimator(cls, value: str) -> str:
        return ADVANTAGE_ESTIMATORS.check(value)

    @field_validator("policy_loss")
    @classmethod
    def _known_policy_loss(cls, value: str) -> str:
        return POLICY_LOSSES.check(value)

    @model_validator(mode="after")
    def _masks_need_a_critic_estimator(self) -> AlgoConfig:
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


def _param_owners() -> dict[str, tuple[FieldInfo, list[tuple[str, str]]]]:
    """Parameter key -> (its field, the (``policy_loss`` / ``adv_estimator``, name) of every
    registered loss / estimator declaring it)."""
    owners: dict[str, tuple[FieldInfo, list[tuple[str, str]]]] = {}
    for field, registry in _OWNERS:
        for name in registry.names():
            model = registry.params(name)
            for key, info in (model.model_fields if model is not None else {}).items():
                owners.setdefault(key, (info, []))[1].append((field, name))
    return owners


#: The keys each preset sets: exactly the fields of :class:`AlgoConfig` without a default.
PRESET_KEYS: tuple[str, ...] = tuple(
    key for key, field in AlgoConfig.model_fields.items() if field.is_required()
)
for _name, _values in PRESETS.items():
    if set(_values) != set(PRESET_KEYS):
        raise RuntimeError(f"preset {_name!r} must set exactly {PRESET_KEYS}, got {sorted(_values)}")
