"""Registries: names map to functions, unknown names list the valid ones, user entries plug in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asyppo.algos import ADVANTAGE_ESTIMATORS, POLICY_LOSSES, AlgoConfig, Registry
from asyppo.config import ConfigError, load_train_config
from pydantic import BaseModel, Field


@pytest.fixture
def scratch_registries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The global registries as they are, restored after the test whatever it registers."""
    for registry in (POLICY_LOSSES, ADVANTAGE_ESTIMATORS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        monkeypatch.setattr(registry, "_attrs", dict(registry._attrs))
    yield


def test_get_returns_the_registered_function() -> None:
    registry: Registry = Registry("widget")

    @registry.register("a")
    def a() -> int:
        return 1

    assert registry.get("a") is a
    assert registry.names() == ("a",)


def test_unknown_name_error_lists_valid_names_sorted() -> None:
    registry: Registry = Registry("widget")
    registry.register("zeta")(lambda: 0)
    registry.register("alpha")(lambda: 0)
    with pytest.raises(ValueError, match=r"unknown widget 'beta'; valid names: alpha, zeta"):
        registry.get("beta")


def test_registering_a_name_twice_fails() -> None:
    registry: Registry = Registry("widget")
    registry.register("a")(lambda: 0)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(lambda: 1)


def test_attributes_given_at_registration_are_read_back() -> None:
    registry: Registry = Registry("widget")
    registry.register("a", flavour="sweet")(lambda: 0)
    assert registry.attr("a", "flavour") == "sweet"
    assert registry.attr("a", "missing", 7) == 7


def test_builtin_policy_losses_are_registered() -> None:
    assert {"aspo", "asympo", "asyppo", "ppo", "spo"} <= set(POLICY_LOSSES.names())


@pytest.mark.usefixtures("scratch_registries")
def test_a_user_registered_loss_is_selectable_from_config() -> None:
    name = "test_user_loss"
    POLICY_LOSSES.register(name)(lambda inputs, cfg: (inputs.log_probs, {}))
    assert AlgoConfig(policy_loss=name).policy_loss == name


class _TemperedParams(BaseModel):
    tempered_beta: float = Field(0.5, gt=0, description="test-only")


@pytest.mark.usefixtures("scratch_registries")
def test_a_user_loss_declares_its_own_parameters_without_touching_algo_config() -> None:
    POLICY_LOSSES.register("tempered", params=_TemperedParams)(lambda inputs, cfg: (inputs.log_probs, {}))
    cfg = load_train_config(None, ["algo.name=grpo", "algo.policy_loss=tempered", "algo.tempered_beta=2"])
    assert cfg.algo.params(_TemperedParams).tempered_beta == 2.0
    assert AlgoConfig(name="grpo", policy_loss="tempered").params(_TemperedParams).tempered_beta == 0.5
    with pytest.raises(ConfigError, match=r"algo.tempered_beta: Input should be greater than 0"):
        load_train_config(None, ["algo.name=grpo", "algo.policy_loss=tempered", "algo.tempered_beta=0"])
    with pytest.raises(ConfigError, match=r"algo.tempered_bta; did you mean algo.tempered_beta\?"):
        load_train_config(None, ["algo.name=grpo", "algo.policy_loss=tempered", "algo.tempered_bta=1"])
    with pytest.raises(ConfigError, match="a parameter of policy_loss 'tempered'"):
        load_train_config(None, ["algo.name=grpo", "algo.tempered_beta=1"])


def test_params_must_be_a_pydantic_model() -> None:
    with pytest.raises(TypeError, match="pydantic model class"):
        Registry("widget").register("a", params=dict)  # type: ignore[arg-type]
