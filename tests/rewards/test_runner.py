"""Specification of `RewardConfig` and `RewardRunner`: scores, and failures counted, never raised."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from asyppo.rewards import RewardConfig, RewardOutput, build_reward_fn
from pydantic import ValidationError

USER_REWARDS = """
import time

def slow_on_wait(response, answer):
    if response == "wait":
        time.sleep(60)
    return 1.0

def boom(response, answer):
    raise RuntimeError("boom from user reward")

def half(response, answer):
    return 0.5

def not_a_number(response, answer):
    return "high"
"""


@pytest.fixture(scope="module")
def user_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rewards") / "user_rewards.py"
    path.write_text(USER_REWARDS)
    return path


def test_math_runner_scores_correct_answers_one_and_others_zero() -> None:
    with build_reward_fn(RewardConfig()) as runner:
        out = runner.score(
            ["\\boxed{85}", "\\boxed{84}", "85", "\\boxed{\\frac{1}{2}}"], ["85", "85", "85", "0.5"]
        )
    np.testing.assert_array_equal(out.scores, np.array([1, 0, 0, 1], dtype=np.float32))
    np.testing.assert_array_equal(out.correct, [True, False, False, True])
    assert out.scores.dtype == np.float32 and (out.n_errors, out.n_timeouts) == (0, 0)


def test_weights_combine_correctness_format_and_user_reward(user_file: Path) -> None:
    cfg = RewardConfig(
        correct_weight=2.0, format_reward=0.1, user_fn=f"{user_file}:half", user_weight=4.0
    )
    with build_reward_fn(cfg) as runner:
        out = runner.score(["\\boxed{3}", "\\boxed{4}", "no box"], ["3", "3", "3"])
    np.testing.assert_allclose(out.scores, [2.0 + 0.1 + 2.0, 0.1 + 2.0, 2.0], rtol=1e-6)


def test_raising_reward_scores_zero_and_is_counted(user_file: Path) -> None:
    with build_reward_fn(RewardConfig(user_fn=f"{user_file}:boom")) as runner:
        out = runner.score(["\\boxed{1}", "\\boxed{2}"], ["1", "2"])
    np.testing.assert_array_equal(out.scores, [0.0, 0.0])
    assert (out.n_errors, out.n_timeouts) == (2, 0)
    assert out.first_error is not None and "boom from user reward" in out.first_error


def test_non_numeric_user_reward_is_counted_as_error(user_file: Path) -> None:
    with build_reward_fn(RewardConfig(user_fn=f"{user_file}:not_a_number")) as runner:
        out = runner.score(["\\boxed{1}"], ["1"])
    assert out.n_errors == 1 and out.scores[0] == 0.0


def test_slow_reward_times_out_off_the_main_thread_and_the_rest_still_scores(
    user_file: Path,
) -> None:
    cfg = RewardConfig(verifier="none", user_fn=f"{user_file}:slow_on_wait", timeout_s=0.3)
    results: list[RewardOutput] = []
    with build_reward_fn(cfg) as runner:
        thread = threading.Thread(
            target=lambda: results.append(runner.score(["wait", "go"], ["", ""]))
        )
        thread.start()
        thread.join()
    (out,) = results
    assert (out.n_timeouts, out.n_errors) == (1, 0)
    # The hung worker was killed; the second response was scored by its replacement.
    np.testing.assert_array_equal(out.scores, [0.0, 1.0])
    np.testing.assert_array_equal(out.correct, [False, True])


def test_mismatched_lengths_raise() -> None:
    with (
        build_reward_fn(RewardConfig(verifier="exact")) as runner,
        pytest.raises(ValueError, match="2 responses but 1 answers"),
    ):
        runner.score(["a", "b"], ["a"])


def test_bad_user_spec_fails_when_building() -> None:
    with pytest.raises(ValueError, match="must look like"):
        build_reward_fn(RewardConfig(user_fn="not a spec"))


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="timeout"):
        RewardConfig(timeout=3)  # type: ignore[call-arg]


def test_config_rejects_scoring_nothing() -> None:
    with pytest.raises(ValidationError, match="verifier is 'none'"):
        RewardConfig(verifier="none")


def test_metrics_are_flat_and_prefixed() -> None:
    out = RewardOutput(np.array([1.0, 0.0], np.float32), np.array([True, False]), 1, 0)
    assert out.metrics() == {
        "reward/mean": 0.5,
        "reward/accuracy": 0.5,
        "reward/n_errors": 1.0,
        "reward/n_timeouts": 0.0,
    }


def test_user_reward_module_is_importable_in_the_worker(
    user_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The module is only on this process's sys.path; the worker must see it too.
    monkeypatch.syspath_prepend(str(user_file.parent))
    with build_reward_fn(RewardConfig(verifier="none", user_fn="user_rewards:half")) as runner:
        out = runner.score(["anything"], ["1"])
    assert (out.n_errors, float(out.scores[0])) == (0, 0.5)


def test_worker_that_cannot_load_the_reward_scores_everything_as_errors(tmp_path: Path) -> None:
    # Loads in this process (so building succeeds) but raises in the worker (run as `python -c`).
    path = tmp_path / "parent_only.py"
    path.write_text(
        "import sys\nif sys.argv[0] == '-c':\n    raise ImportError('not in the worker')\n"
        "def half(response, answer):\n    return 0.5\n"
    )
    with build_reward_fn(RewardConfig(verifier="none", user_fn=f"{path}:half")) as runner:
        first = runner.score(["a", "b"], ["1", "2"])
        second = runner.score(["c"], ["3"])
    assert (first.n_errors, second.n_errors) == (2, 1)
    assert first.first_error is not None and "not in the worker" in first.first_error
