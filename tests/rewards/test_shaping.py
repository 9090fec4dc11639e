"""Specification of DAPO's soft overlong punishment (arXiv 2503.14476 §3.4, eq. 13) and its
``reward.overlong_buffer`` / ``reward.overlong_penalty_factor`` config keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from asyppo.config import ConfigError, load_train_config
from asyppo.rewards import RewardConfig, overlong_penalty

ROOT = Path(__file__).resolve().parents[2]


def penalty(*lengths: int, max_length: int = 20, buffer: int = 4, factor: float = 1.0) -> list[float]:
    out = overlong_penalty(np.array(lengths, dtype=np.int64), max_length=max_length, buffer=buffer, factor=factor)
    assert out.dtype == np.float32 and out.shape == (len(lengths),)
    return out.tolist()


def test_no_penalty_up_to_the_start_of_the_buffer() -> None:
    # L_max = 20, L_cache = 4: the buffer starts after 16 tokens.
    assert penalty(0, 1, 15, 16) == [0.0, 0.0, 0.0, 0.0]


def test_one_token_into_the_buffer_costs_one_buffer_share() -> None:
    assert penalty(17) == [-0.25]


def test_the_penalty_falls_linearly_to_minus_one_at_the_budget() -> None:
    assert penalty(16, 17, 18, 19, 20) == [0.0, -0.25, -0.5, -0.75, -1.0]


def test_a_response_beyond_the_budget_gets_minus_one() -> None:
    assert penalty(21, 1000) == [-1.0, -1.0]


def test_the_papers_setting_at_its_boundaries() -> None:
    # DAPO's run: L_max = 20,480 and L_cache = 4,096.
    got = penalty(16_384, 16_385, 18_432, 20_480, max_length=20_480, buffer=4_096)
    np.testing.assert_allclose(got, [0.0, -1 / 4096, -0.5, -1.0], rtol=1e-6)


def test_the_factor_scales_the_penalty() -> None:
    assert penalty(16, 18, 20, 30, factor=0.5) == [0.0, -0.25, -0.5, -0.5]


def test_a_buffer_as_long_as_the_budget_penalises_from_the_first_token() -> None:
    assert penalty(0, 1, 2, 4, max_length=4, buffer=4) == [0.0, -0.25, -0.5, -1.0]


def test_no_responses_give_no_penalties() -> None:
    assert penalty() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"buffer": 0}, "buffer must be in"),
        ({"buffer": 21}, "buffer must be in"),
        ({"max_length": 0, "buffer": 1}, "max_length must be >= 1"),
        ({"factor": -1.0}, "factor must be finite and >= 0"),
        ({"factor": float("nan")}, "factor must be finite and >= 0"),
    ],
)
def test_bad_parameters_are_refused_by_name(kwargs: dict[str, float], message: str) -> None:
    args = {"max_length": 20, "buffer": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        overlong_penalty(np.array([3]), **args)  # type: ignore[arg-type]


def test_fractional_lengths_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="lengths must be integer"):
        overlong_penalty(np.array([3.5]), max_length=20, buffer=4)


def test_negative_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        overlong_penalty(np.array([3, -1]), max_length=20, buffer=4)


def test_lengths_must_be_one_dimensional() -> None:
    with pytest.raises(ValueError, match=r"lengths must be 1-D"):
        overlong_penalty(np.zeros((2, 2), dtype=np.int64), max_length=20, buffer=4)


def test_the_soft_punishment_is_off_by_default() -> None:
    assert RewardConfig().overlong_buffer is None


@pytest.mark.parametrize(
    "override",
    ["reward.overlong_buffer=0", "reward.overlong_buffer=2.5", "reward.overlong_penalty_factor=-0.5",
     "reward.overlong_penalty_factor=.nan"],
)
def test_bad_config_values_name_their_key(override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_train_config(None, [override])


def test_a_buffer_longer_than_the_budget_is_refused_naming_both_keys() -> None:
    with pytest.raises(ConfigError, match=r"reward\.overlong_buffer \(9\) exceeds rollout\.max_new_tokens \(8\)"):
        load_train_config(None, ["rollout.max_new_tokens=8", "reward.overlong_buffer=9"])


def test_a_buffer_as_long_as_the_budget_is_accepted() -> None:
    cfg = load_train_config(None, ["rollout.max_new_tokens=8", "reward.overlong_buffer=8"])
    assert cfg.reward.overlong_buffer == 8


def test_the_dapo_baseline_buffers_a_fifth_of_its_budget_like_the_paper() -> None:
    cfg = load_train_config(str(ROOT / "configs" / "baseline_dapo.yaml"))
    assert cfg.reward.overlong_buffer == cfg.rollout.max_new_tokens // 5
    assert cfg.reward.overlong_penalty_factor == 1.0
