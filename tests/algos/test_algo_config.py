"""AlgoConfig: presets fill the objective's knobs, explicit fields win, bad configs fail clearly."""

from __future__ import annotations

import pytest
from asyppo.algos import (
    ADVANTAGE_ESTIMATORS,
    POLICY_LOSSES,
    PRESET_KEYS,
    PRESETS,
    AlgoConfig,
)


def test_default_is_asyppo_with_the_paper_hyperparameters() -> None:
    cfg = AlgoConfig()
    assert cfg.name == "asyppo"
    assert (cfg.adv_estimator, cfg.policy_loss, cfg.loss_agg) == ("gae", "asyppo", "token-mean")
    assert (cfg.gamma, cfg.lam, cfg.value_agg) == (1.0, 1.0, "mean")
    assert (cfg.adv_mask_ratio, cfg.ent_filter_ratio, cfg.entropy_coef) == (0.2, 0.2, 0.01)
    assert cfg.kl_coef == 0.0


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_sets_every_preset_key(name: str) -> None:
    assert set(PRESETS[name]) == set(PRESET_KEYS)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_and_names_registered_parts(name: str) -> None:
    cfg = AlgoConfig(name=name)
    assert cfg.adv_estimator in ADVANTAGE_ESTIMATORS
    assert cfg.policy_loss in POLICY_LOSSES


def test_dapo_preset_uses_clip_higher_and_dynamic_sampling() -> None:
    cfg = AlgoConfig(name="dapo")
    assert (cfg.clip_low, cfg.clip_high, cfg.dynamic_sampling) == (0.2, 0.28, True)


def test_explicit_field_overrides_the_preset() -> None:
    cfg = AlgoConfig(name="dapo", clip_high=0.3, loss_agg="seq-mean-token-mean")
    assert cfg.clip_high == 0.3
    assert cfg.loss_agg == "seq-mean-token-mean"
    assert cfg.adv_estimator == "grpo"  # still from the preset


def test_explicit_none_overrides_a_default() -> None:
    assert AlgoConfig(clip_c=None).clip_c is None


def test_uses_critic_only_for_the_gae_estimator() -> None:
    users = {name for name in PRESETS if AlgoConfig(name=name).uses_critic}
    assert users == {"asyppo", "ppo"}


def test_model_dump_round_trips() -> None:
    cfg = AlgoConfig(name="spo", spo_neg_scale=0.25)
    assert AlgoConfig(**cfg.model_dump()) == cfg


def test_unknown_preset_lists_the_valid_presets() -> None:
    with pytest.raises(ValueError, match="unknown algo preset name 'nope'.*asyppo, ppo, grpo"):
        AlgoConfig(name="nope")


def test_unknown_estimator_lists_the_valid_estimators() -> None:
    with pytest.raises(ValueError, match="unknown advantage estimator 'vtrace'.*drgrpo, gae, grpo"):
        AlgoConfig(adv_estimator="vtrace")


def test_unknown_policy_loss_lists_the_valid_losses() -> None:
    with pytest.raises(
        ValueError, match="unknown policy loss 'gspo'.*aspo, asympo, asyppo, ppo, spo"
    ):
        AlgoConfig(policy_loss="gspo")


def test_unknown_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="clip_ratio"):
        AlgoConfig(clip_ratio=0.2)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("clip_c", 1.0),
        ("gamma", 1.5),
        ("adv_mask_ratio", -0.1),
        ("spo_neg_scale", 1.0),
        ("aspo_cap", 0.5),
        ("kl_estimator", "k2"),
        ("mask_scope", "token"),
    ],
)
def test_out_of_range_value_names_the_field(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        AlgoConfig(**{key: value})


def test_critic_masks_with_a_critic_free_estimator_are_rejected() -> None:
    with pytest.raises(ValueError, match="critic-based adv_estimator"):
        AlgoConfig(name="grpo", adv_mask_ratio=0.2)


def test_reward_side_kl_with_a_score_only_estimator_is_rejected() -> None:
    with pytest.raises(ValueError, match="use kl_mode='loss'"):
        AlgoConfig(name="grpo", kl_coef=0.01, kl_mode="reward")


def test_config_is_immutable() -> None:
    cfg = AlgoConfig()
    with pytest.raises(ValueError):
        cfg.clip_high = 0.5  # type: ignore[misc]
