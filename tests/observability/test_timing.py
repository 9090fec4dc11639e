"""Phase timer and peak memory."""

from __future__ import annotations

import psutil
import pytest
from asyppo.observability import PhaseTimer, peak_memory_metrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_phases_accumulate_into_time_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("asyppo.observability.timing.time.perf_counter", clock)
    timer = PhaseTimer()
    for seconds in (1.5, 0.5):
        with timer.phase("generate"):
            clock.now += seconds
    with timer.phase("actor"):
        clock.now += 2.0
    assert timer.metrics() == {"time/generate": 2.0, "time/actor": 2.0}


def test_a_phase_that_raises_is_still_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("asyppo.observability.timing.time.perf_counter", clock)
    timer = PhaseTimer()
    with pytest.raises(RuntimeError), timer.phase("reward"):
        clock.now += 1.0
        raise RuntimeError("reward crashed")
    assert timer.metrics() == {"time/reward": 1.0}


def test_reset_clears_the_phases() -> None:
    timer = PhaseTimer()
    with timer.phase("sync"):
        pass
    timer.reset()
    assert timer.metrics() == {}


def test_peak_rss_is_at_least_the_current_rss() -> None:
    metrics = peak_memory_metrics()
    current_mb = psutil.Process().memory_info().rss / 2**20
    assert metrics["perf/peak_rss_mb"] >= current_mb * 0.99
