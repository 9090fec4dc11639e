"""AlgoConfig: presets fill the objective's knobs, explicit fields win, bad configs fail clearly."""

from __future__ import annotations

import pytest
from asyppo.algos import (
    ADVANTAGE_ESTIMATORS,
    POLICY_LOSSES,
    PRESET_KEYS,
    PRESETS,
    AlgoConfig,
    AspoParams,
    SpoParams,
)
from asyppo.config import ConfigError, load_train_config


def test_default_is_asyppo_with_the_paper_hyperparameters() -> None:
    cfg = AlgoConfig()
    assert cfg.name == "asyppo"
    assert (cfg.adv_estimator, cfg.policy_loss, cfg.loss_agg) == ("gae", "asyppo", "token-mean")
    assert (cfg.gamma, cfg.lam, cfg.value_agg) == (1.0, 1.0, "mean")
    assert (cfg.adv_mask_ratio, cfg.ent_filter_ratio, cfg.entropy_coef) == (0.2, 0.2, 0.01)
    assert cfg.kl_coef == 0.0


def test_a_default_lives_either_on_its_field_or_in_the_presets_never_both() -> None:
    for key, field in AlgoConfig.model_fields.items():
        in_presets = {key in values for values in PRESETS.values()}
        assert in_presets in ({True}, {False}), f"{key}: set by some presets only"
        assert field.is_required() == (True in in_presets), f"{key}: default in two places"


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_preset_changes_nothing_but_its_own_keys(name: str) -> None:
    cfg, default = AlgoConfig(name=name), AlgoConfig()
    for key in set(AlgoConfig.model_fields) - set(PRESET_KEYS) - {"name"}:
        assert getattr(cfg, key) == getattr(default, key), key
    assert {key: getattr(cfg, key) for key in PRESET_KEYS} == PRESETS[name]


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


@pytest.mark.parametrize("name", list(PRESETS))
def test_model_dump_round_trips(name: str) -> None:
    cfg = AlgoConfig(name=name)
    assert AlgoConfig(**cfg.model_dump()) == cfg


def test_model_dump_round_trips_the_losses_parameters() -> None:
    cfg = AlgoConfig(name="spo", spo_neg_scale=0.25)
    assert cfg.model_dump()["spo_neg_scale"] == 0.25
    assert AlgoConfig(**cfg.model_dump()) == cfg


def test_value_sources_name_the_preset_of_every_preset_key_not_given() -> None:
    cfg = AlgoConfig(name="dapo", clip_high=0.3, gamma=0.9)
    assert cfg.value_sources() == {key: "preset dapo" for key in PRESET_KEYS if key != "clip_high"}
    assert cfg.model_fields_set == {"name", "clip_high", "gamma"}


def test_the_chosen_loss_brings_its_parameters_with_their_defaults() -> None:
    assert AlgoConfig(name="aspo").params(AspoParams) == AspoParams()
    assert AlgoConfig(name="aspo", aspo_cap=2.0).params(AspoParams).aspo_cap == 2.0
    assert AlgoConfig(name="spo").model_extra == {"spo_neg_scale": 0.5}
    assert AlgoConfig().model_extra == {}  # asyppo's loss has no parameters of its own


def test_reading_the_parameters_of_a_loss_that_is_not_chosen_fails() -> None:
    with pytest.raises(ValueError, match="SpoParams is not the parameter model"):
        AlgoConfig(name="aspo").params(SpoParams)


def test_a_parameter_of_another_loss_is_refused_naming_its_loss() -> None:
    with pytest.raises(ValueError, match=r"spo_neg_scale\n.*policy_loss 'spo', not of the chosen policy_loss 'ppo'"):
        AlgoConfig(name="ppo", spo_neg_scale=0.3)


def test_another_losss_parameter_at_its_default_is_dropped_so_old_run_configs_resume() -> None:
    # A run's config.yaml written before each loss owned its parameters lists all of them.
    default = SpoParams.model_fields["spo_neg_scale"].default
    cfg = AlgoConfig(name="ppo", spo_neg_scale=default)
    assert "spo_neg_scale" not in (cfg.model_extra or {})


def test_a_misspelt_parameter_is_suggested_like_any_other_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key algo.aspo_cpa; did you mean algo.aspo_cap\?"):
        load_train_config(None, ["algo.name=aspo", "algo.aspo_cpa=2"])


def test_a_boolean_for_a_numeric_parameter_is_refused() -> None:
    with pytest.raises(ConfigError, match="algo.aspo_cap: expected a number, not a boolean"):
        load_train_config(None, ["algo.name=aspo", "algo.aspo_cap=true"])


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
    ("name", "key", "value", "why"),
    [
        ("asyppo", "clip_c", 1.0, "greater than 1"),
        ("asyppo", "gamma", 1.5, "less than or equal to 1"),
        ("asyppo", "adv_mask_ratio", -0.1, "greater than or equal to 0"),
        ("spo", "spo_neg_scale", 1.0, "less than 1"),
        ("aspo", "aspo_cap", 0.5, "greater than 1"),
        ("asyppo", "kl_estimator", "k2", "'k1' or 'k3'"),
        ("asyppo", "mask_scope", "token", "'batch', 'group' or 'sequence'"),
    ],
)
def test_out_of_range_value_names_the_field(name: str, key: str, value: object, why: str) -> None:
    with pytest.raises(ValueError, match=rf"{key}\n +Input should be {why}"):
        AlgoConfig(name=name, **{key: value})


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
