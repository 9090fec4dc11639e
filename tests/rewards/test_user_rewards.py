"""Specification of user reward loading from ``module:function`` and ``file.py:function``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from asyppo.rewards import load_user_reward

REWARD_SOURCE = (
    "def length_reward(response, answer):\n    return float(len(response))\n\nNOT_CALLABLE = 3\n"
)


@pytest.fixture
def reward_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_rewards.py"
    path.write_text(REWARD_SOURCE)
    return path


def test_loads_function_from_file_path(reward_file: Path) -> None:
    fn = load_user_reward(f"{reward_file}:length_reward")
    assert fn("abc", "") == 3.0


def test_loads_function_from_module(reward_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(reward_file.parent))
    monkeypatch.delitem(sys.modules, "my_rewards", raising=False)
    fn = load_user_reward("my_rewards:length_reward")
    assert fn("abcd", "") == 4.0


def test_spec_without_colon_is_rejected() -> None:
    with pytest.raises(ValueError, match="must look like 'package.module:function'"):
        load_user_reward("my_rewards.length_reward")


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    with pytest.raises(ValueError, match="nope.py.*does not exist"):
        load_user_reward(f"{missing}:fn")


def test_missing_module_is_named() -> None:
    with pytest.raises(ValueError, match="cannot import module 'no_such_module_xyz'"):
        load_user_reward("no_such_module_xyz:fn")


def test_missing_function_is_named(reward_file: Path) -> None:
    with pytest.raises(ValueError, match="has no attribute 'absent'"):
        load_user_reward(f"{reward_file}:absent")


def test_non_callable_attribute_is_a_type_error(reward_file: Path) -> None:
    with pytest.raises(TypeError, match="'NOT_CALLABLE' is a int, not a callable"):
        load_user_reward(f"{reward_file}:NOT_CALLABLE")
