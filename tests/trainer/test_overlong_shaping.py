"""Specification of the scores the trainer trains on: ``reward.truncated_score`` first, then DAPO's
soft overlong punishment (``reward.overlong_buffer``), both reaching the step's buffer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from asyppo.config import load_train_config
from asyppo.generation import GenerationOutput
from asyppo.rewards import RewardConfig
from asyppo.trainer import Trainer
from asyppo.trainer.experience import rollout_buffer, shaped_scores
from trainer_assets import Assets

SCORES = np.array([1.0, 1.0, 0.5, 0.0], np.float32)


def rollout() -> GenerationOutput:
    """Four responses of 2, 3, 4 and 4 tokens to one prompt; the last one hit the limit of 4."""
    return GenerationOutput(
        token_ids=np.arange(13, dtype=np.int64),
        offsets=np.array([0, 2, 5, 9, 13], dtype=np.int64),
        prompt_index=np.zeros(4, dtype=np.int64),
        finished=np.array([True, True, True, False]),
    )


def test_without_a_buffer_the_scores_and_metrics_are_untouched() -> None:
    cfg = RewardConfig(truncated_score=None)
    scores, metrics = shaped_scores(SCORES, rollout(), cfg, max_new_tokens=4)
    np.testing.assert_array_equal(scores, SCORES)
    assert scores.dtype == np.float32
    assert metrics == {}


def test_the_penalty_is_added_to_the_verifier_score() -> None:
    # L_max = 4, L_cache = 2: 0 up to 2 tokens, -0.5 at 3, -1 at 4.
    cfg = RewardConfig(truncated_score=None, overlong_buffer=2)
    scores, _ = shaped_scores(SCORES, rollout(), cfg, max_new_tokens=4)
    np.testing.assert_array_equal(scores, np.array([1.0, 0.5, -0.5, -1.0], np.float32))
    assert scores.dtype == np.float32


def test_the_truncated_score_applies_first_then_the_penalty() -> None:
    cfg = RewardConfig(truncated_score=0.25, overlong_buffer=2, overlong_penalty_factor=0.5)
    scores, _ = shaped_scores(SCORES, rollout(), cfg, max_new_tokens=4)
    np.testing.assert_array_equal(scores, np.array([1.0, 0.75, 0.0, 0.25 - 0.5], np.float32))


def test_the_metrics_report_the_mean_penalty() -> None:
    cfg = RewardConfig(truncated_score=None, overlong_buffer=2, overlong_penalty_factor=0.5)
    _, metrics = shaped_scores(SCORES, rollout(), cfg, max_new_tokens=4)
    assert metrics == {"reward/overlong_penalty": pytest.approx((0 - 0.25 - 0.5 - 0.5) / 4)}


def test_the_shaped_scores_reach_the_token_rewards() -> None:
    out = rollout()
    scores, _ = shaped_scores(SCORES, out, RewardConfig(truncated_score=None, overlong_buffer=2), max_new_tokens=4)
    buf = rollout_buffer([[1]], out, scores, policy_version=0)
    last = buf.offsets[1:] - 1
    np.testing.assert_array_equal(buf.token_rewards()[last], [1.0, 0.5, -0.5, -1.0])


def first_step(assets: Assets, out_dir: Path, *extra: str) -> dict[str, float]:
    cfg = load_train_config(None, assets.overrides(out_dir, "algo.name=grpo", "trainer.steps=1", *extra))
    trainer = Trainer(cfg)
    try:
        return trainer.train_step()
    finally:
        trainer.close()


@pytest.fixture(scope="module")
def steps(assets: Assets, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, float], dict[str, float]]:
    """The first step's metrics without and with a buffer as long as the budget (6), which makes the
    penalty -factor * length / 6 for every response: its mean follows from the mean length
    whatever the random model samples. Same seed, same weights: both sample the same responses."""
    root = tmp_path_factory.mktemp("overlong")
    plain = first_step(assets, root / "plain")
    shaped = first_step(assets, root / "shaped", "reward.overlong_buffer=6", "reward.overlong_penalty_factor=0.5")
    assert shaped["response/length_mean"] == plain["response/length_mean"]
    return plain, shaped


def test_a_training_step_logs_the_mean_penalty(steps: tuple[dict[str, float], dict[str, float]]) -> None:
    plain, shaped = steps
    assert "reward/overlong_penalty" not in plain
    assert shaped["reward/overlong_penalty"] == pytest.approx(-0.5 * shaped["response/length_mean"] / 6, abs=1e-6)


def test_a_training_step_trains_on_the_penalised_scores(steps: tuple[dict[str, float], dict[str, float]]) -> None:
    plain, shaped = steps
    # reward/mean is the mean of the buffer's rewards, the scores the advantages are computed from.
    assert shaped["reward/mean"] == pytest.approx(plain["reward/mean"] + shaped["reward/overlong_penalty"], abs=1e-6)


def test_the_accuracy_keeps_the_verifiers_verdict(steps: tuple[dict[str, float], dict[str, float]]) -> None:
    plain, shaped = steps
    assert shaped["reward/accuracy"] == plain["reward/accuracy"]
