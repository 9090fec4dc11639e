"""Registries: names map to functions, unknown names list the valid ones, user entries plug in."""

from __future__ import annotations

import pytest
from asyppo.algos import POLICY_LOSSES, AlgoConfig, Registry


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


def test_a_user_registered_loss_is_selectable_from_config() -> None:
    name = "test_user_loss"
    POLICY_LOSSES.register(name)(lambda inputs, cfg: (inputs.log_probs, {}))
    assert AlgoConfig(policy_loss=name).policy_loss == name
