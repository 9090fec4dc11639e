"""Specification of `RewardConfig` and `RewardRunner`: scores; failures counted, the first one
logged with its traceback; a reward that cannot score at all (its import fails or hangs, or every
response of a batch fails) raises `RewardError`."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from asyppo.rewards import RewardConfig, RewardError, RewardOutput, build_reward_fn
from pydantic import ValidationError

USER_REWARDS = """
import math
import time

def slow_on_wait(response, answer):
    if response == "wait":
        time.sleep(60)
    return 1.0

def boom(response, answer):
    raise RuntimeError("boom from user reward")

def boom_on_odd(response, answer):
    if response.endswith(("1}", "3}")):
        raise RuntimeError(f"boom on {response}")
    return 0.5

def half(response, answer):
    return 0.5

def not_a_number(response, answer):
    return "high"

def numeric_string(response, answer):
    return "0.5"

def nothing(response, answer):
    return None

def nan(response, answer):
    return math.nan
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
    np.testing.assert_array_equal(out.answered, [True, True, False, True])
    assert out.metrics()["reward/answered"] == 0.75 and out.unanswered_warning("eval") is None


def test_the_fallback_scores_plain_answers_and_a_batch_without_answers_warns() -> None:
    with build_reward_fn(RewardConfig(answer_fallback="last_number")) as runner:
        out = runner.score(["so 85.", "85 or 84"], ["85", "85"])
    np.testing.assert_array_equal(out.correct, [True, False])
    with build_reward_fn(RewardConfig()) as runner:
        out = runner.score(["so 85.", "I think 85"], ["85", "85"])
    assert not out.correct.any() and out.metrics()["reward/answered"] == 0.0
    warning = out.unanswered_warning("eval")
    assert warning is not None and "none of the 2 responses" in warning and "answer_fallback" in warning


def test_without_a_verifier_nothing_is_counted_as_answered(user_file: Path) -> None:
    cfg = RewardConfig(verifier="none", user_fn=f"{user_file}:half")
    with build_reward_fn(cfg) as runner:
        out = runner.score(["abc"], ["x"])
    assert out.answered is None and "reward/answered" not in out.metrics() and out.unanswered_warning("x") is None


def test_weights_combine_correctness_format_and_user_reward(user_file: Path) -> None:
    cfg = RewardConfig(
        correct_weight=2.0, format_reward=0.1, user_fn=f"{user_file}:half", user_weight=4.0
    )
    with build_reward_fn(cfg) as runner:
        out = runner.score(["\\boxed{3}", "\\boxed{4}", "no box"], ["3", "3", "3"])
    np.testing.assert_allclose(out.scores, [2.0 + 0.1 + 2.0, 0.1 + 2.0, 2.0], rtol=1e-6)


def test_a_raising_reward_is_logged_once_with_its_traceback_and_counted(
    user_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    responses = ["\\boxed{1}", "\\boxed{2}", "\\boxed{3}", "\\boxed{4}"]
    with caplog.at_level(logging.WARNING), build_reward_fn(RewardConfig(user_fn=f"{user_file}:boom_on_odd")) as runner:
        out = runner.score(responses, ["1", "2", "5", "4"])
        again = runner.score(responses, ["1", "2", "5", "4"])
    np.testing.assert_array_equal(out.scores, [0.0, 1.5, 0.0, 1.5])
    assert (out.n_errors, out.n_timeouts, again.n_errors) == (2, 0, 2)
    assert out.first_error == "RuntimeError: boom on \\boxed{1}"
    # The verifier's verdict survives the user reward's failure: item 0 is correct.
    np.testing.assert_array_equal(out.correct, [True, True, False, True])
    (record,) = [r for r in caplog.records if r.name == "asyppo.rewards.runner"]
    assert "boom on \\boxed{1}" in record.getMessage()
    assert "Traceback (most recent call last)" in record.getMessage()
    assert f'File "{user_file}"' in record.getMessage() and "boom_on_odd" in record.getMessage()


def test_a_batch_where_every_response_fails_stops_with_the_first_error(user_file: Path) -> None:
    with (
        build_reward_fn(RewardConfig(user_fn=f"{user_file}:boom")) as runner,
        pytest.raises(RewardError, match=r"all 2 responses of the batch failed to score \(2 errors, 0 timeouts\); "
                                         r"the first: RuntimeError: boom from user reward"),
    ):
        runner.score(["\\boxed{1}", "\\boxed{2}"], ["1", "2"])


@pytest.mark.parametrize(
    ("fn", "shown"),
    [("not_a_number", "str 'high'"), ("numeric_string", "str '0.5'"), ("nothing", "NoneType None"), ("nan", "nan")],
)
def test_a_user_reward_that_returns_no_finite_number_is_an_error(user_file: Path, fn: str, shown: str) -> None:
    # A string is not a score even when float() would parse it.
    with (
        build_reward_fn(RewardConfig(user_fn=f"{user_file}:{fn}")) as runner,
        pytest.raises(RewardError, match=rf"all 1 responses .* returned {shown}"),
    ):
        runner.score(["\\boxed{1}"], ["1"])


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


def test_bad_user_spec_fails_when_building(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must look like"):
        build_reward_fn(RewardConfig(user_fn="not a spec"))
    with pytest.raises(ValueError, match="does not exist"):
        build_reward_fn(RewardConfig(user_fn=f"{tmp_path}/missing.py:fn"))


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


def test_the_user_reward_is_imported_only_in_the_worker(tmp_path: Path) -> None:
    marker = tmp_path / "imported_in"
    path = tmp_path / "records_importer.py"
    path.write_text(f"import os\nopen({str(marker)!r}, 'a').write(str(os.getpid()) + '\\n')\n"
                    "def half(response, answer):\n    return 0.5\n")
    with build_reward_fn(RewardConfig(verifier="none", user_fn=f"{path}:half")) as runner:
        runner.wait_ready()
        worker = runner._proc.pid  # type: ignore[union-attr]
    assert marker.read_text().split() == [str(worker)]


IMPORT_FAILURES = {
    "raises": ("raise ImportError('no such thing in the worker')\n",
               r"(?s)could not import reward.user_fn .*:\nTraceback.*raises.py.*ImportError: no such thing in the worker"),
    "hangs": ("import time\ntime.sleep(60)\n", r"did not import reward.user_fn .* within 0.5s \(reward.timeout_s\)"),
    "exits": ("import os\nos._exit(3)\n", r"exited \(exit code 3\) before it could import reward.user_fn"),
    "sys_exit": ("import sys\nsys.exit('bye')\n", r"(?s)could not import reward.user_fn .*SystemExit: bye"),
}


@pytest.mark.parametrize("case", sorted(IMPORT_FAILURES))
def test_a_user_module_that_fails_at_import_raises_with_the_workers_report(tmp_path: Path, case: str) -> None:
    body, expected = IMPORT_FAILURES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(body + "def half(response, answer):\n    return 0.5\n")
    with build_reward_fn(RewardConfig(verifier="none", user_fn=f"{path}:half", timeout_s=0.5)) as runner:
        with pytest.raises(RewardError, match=expected) as first:
            runner.score(["a", "b"], ["1", "2"])
        # Broken for good: the next call fails the same way at once instead of re-importing.
        with pytest.raises(RewardError) as second:
            runner.score(["c"], ["3"])
    assert str(second.value) == str(first.value)
