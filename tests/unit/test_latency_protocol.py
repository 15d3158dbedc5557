"""The latency protocol's arithmetic (worker.engine.latency), without TensorFlow: percentiles,
trimmed mean/std/CV, the larger of N runs or T seconds, and the stability guard re-measuring
once then flagging — the timer is injected, so a "noisy machine" is a list of durations."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from worker.engine.latency import Guard, measure_guarded, summarize, time_calls


def test_percentiles_and_trimmed_spread() -> None:
    times = np.arange(1, 101, dtype=np.float64)  # 1..100 ms
    s = summarize(times)
    # NumPy's linear interpolation (type 7): position q/100 × (n − 1) between order statistics
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p90_ms == pytest.approx(90.1)
    assert s.p95_ms == pytest.approx(95.05)
    assert s.p99_ms == pytest.approx(99.01)
    assert (s.min_ms, s.max_ms, s.count) == (1.0, 100.0, 100)
    bulk = np.arange(1, 100, dtype=np.float64)  # ≤ p99: 100 is left out of mean/std/cv
    assert s.mean_ms == pytest.approx(50.0)
    assert s.std_ms == pytest.approx(float(bulk.std()))
    assert s.cv == pytest.approx(float(bulk.std()) / 50.0)
    assert s.p99_over_p50 == pytest.approx(99.01 / 50.5)
    assert s.duration_s == pytest.approx(5.05)


def test_one_preemption_does_not_swamp_the_spread() -> None:
    times = np.full(10_000, 0.010)
    times[17] = 30.0  # one 30 ms hiccup among 10⁴ calls of 10 µs
    s = summarize(times)
    assert s.p99_ms == pytest.approx(0.010)
    assert s.cv == pytest.approx(0.0)
    assert s.max_ms == 30.0
    assert not Guard().unstable(s)


def test_empty_refused() -> None:
    with pytest.raises(ValueError, match="no timed runs"):
        summarize(np.array([]))


class FakeClock:
    """A timer whose every call advances by the next of `steps_ns` (cycled); counts fn calls."""

    def __init__(self, call_ns: Iterator[int]) -> None:
        self.now = 0
        self.call_ns = call_ns
        self.calls = 0

    def timer(self) -> int:
        return self.now

    def fn(self) -> None:
        self.calls += 1
        self.now += next(self.call_ns)


def steady(ns: int) -> Iterator[int]:
    while True:
        yield ns


def test_runs_floor_and_duration_floor() -> None:
    clock = FakeClock(steady(1_000_000))  # 1 ms per call
    t = time_calls(clock.fn, runs=50, warmup=5, min_duration_s=0.0, timer=clock.timer)
    assert len(t) == 50 and clock.calls == 55  # warm-up calls are made, not timed
    assert np.all(t == 1.0)
    clock = FakeClock(steady(1_000_000))
    t = time_calls(clock.fn, runs=50, warmup=0, min_duration_s=0.2, timer=clock.timer)
    assert len(t) == 200  # 0.2 s of 1 ms calls beats 50 runs
    clock = FakeClock(steady(1_000_000))
    assert len(time_calls(clock.fn, runs=10, warmup=0, min_duration_s=5.0, timer=clock.timer, max_runs=300)) == 300


def noisy_then(n_noisy: int, then_ns: int) -> Iterator[int]:
    """`n_noisy` calls alternating 1 ms / 9 ms (cv 0.8), then steady calls of `then_ns`."""
    for i in range(n_noisy):
        yield 1_000_000 if i % 2 else 9_000_000
    yield from steady(then_ns)


def test_guard_remeasures_once_and_keeps_the_quiet_figure() -> None:
    clock = FakeClock(noisy_then(100, 2_000_000))
    g = measure_guarded(clock.fn, runs=100, warmup=0, min_duration_s=0.0, guard=Guard(max_cv=0.5), timer=clock.timer)
    assert not g.unstable
    assert [round(a["cv"], 2) for a in g.attempts] == [0.8, 0.0]
    assert g.stats.p50_ms == 2.0 and g.stats.count == 100


def test_guard_flags_what_stays_noisy() -> None:
    clock = FakeClock(noisy_then(10_000, 0))
    g = measure_guarded(clock.fn, runs=100, warmup=0, min_duration_s=0.0, guard=Guard(max_cv=0.5), timer=clock.timer)
    assert g.unstable and len(g.attempts) == 2 and clock.calls == 200


def test_heavy_tail_trips_the_p99_ratio() -> None:
    times = np.full(1000, 1.0)
    times[:50] = 10.0  # 5 % of calls delayed tenfold: p99/p50 = 10, cv of the bulk large too
    s = summarize(times)
    assert s.p99_over_p50 == pytest.approx(10.0)
    assert Guard(max_cv=100.0, max_p99_over_p50=3.0).unstable(s)
    assert not Guard(max_cv=100.0, max_p99_over_p50=11.0).unstable(s)


def test_quick_mode_does_not_remeasure() -> None:
    clock = FakeClock(noisy_then(10_000, 0))
    g = measure_guarded(
        clock.fn, runs=100, warmup=0, min_duration_s=0.0, guard=Guard(), remeasure=False, timer=clock.timer
    )
    assert g.unstable and len(g.attempts) == 1 and clock.calls == 100
    assert not math.isnan(g.stats.cv)
