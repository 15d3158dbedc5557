"""The latency protocol: warm-up, then the larger of N runs or T seconds, summarised as a
distribution, with a stability guard. Pure Python + NumPy (no TensorFlow), so its arithmetic is
tested with an injected timer.

What is timed: one call of `fn` (for TFLite, `Interpreter.invoke` on a batch-1 input already set,
so neither input copy nor output read is included), between two readings of `timer` (default
`time.perf_counter_ns`, monotonic, nanoseconds). Warm-up calls are not timed. Timing continues
until at least `runs` calls were timed AND at least `min_duration_s` seconds have passed since the
first timed call (so fast models get many more samples than `runs`; MLPerf's single-stream
scenario asks for ≥ 1,024 queries and reports the 90th percentile, which is our headline).

Percentiles, min and max are over all timed calls; percentiles are NumPy's default linear
interpolation between order statistics (`np.percentile(..., method="linear")`, Hyndman & Fan
type 7). `mean_ms`, `std_ms` (population, ddof=0) and `cv` = std / mean are over the calls at or
below p99: at tens of microseconds per call, one preemption of a few milliseconds among 10⁵
calls would otherwise make the standard deviation ten times the median and say nothing about
the bulk (the slowest 1 % are described by p99 and max).

The guard (docs/techniques.md, "Latency protocol"): a distribution is unstable when
cv > max_cv (the bulk is spread: the machine's load varied while timing) or p99 / p50 >
max_p99_over_p50 (a heavy tail: more than 1 % of calls were delayed). An unstable first measurement is repeated once
(when `remeasure`); the second is kept, and flagged `unstable` if it too breaks the guard.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from time import perf_counter_ns

import numpy as np

Timer = Callable[[], int]  # nanoseconds, monotonic


@dataclass(frozen=True)
class LatencyStats:
    """A latency distribution in milliseconds (`count` timed calls, `duration_s` wall seconds);
    mean, std and cv of the calls at or below p99 (module docstring)."""

    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    count: int
    cv: float
    p99_over_p50: float
    duration_s: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(times_ms: np.ndarray, duration_s: float | None = None) -> LatencyStats:
    """The distribution of `times_ms` ((n,) float, n ≥ 1, milliseconds). Raises ValueError on an
    empty array. `duration_s` defaults to the sum of the times (seconds)."""
    t = np.asarray(times_ms, dtype=np.float64)
    if t.size == 0:
        raise ValueError("no timed runs to summarise")
    p50, p90, p95, p99 = (float(v) for v in np.percentile(t, [50, 90, 95, 99]))
    bulk = t[t <= p99]
    mean, std = float(bulk.mean()), float(bulk.std())
    return LatencyStats(
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        mean_ms=mean,
        std_ms=std,
        min_ms=float(t.min()),
        max_ms=float(t.max()),
        count=int(t.size),
        cv=std / mean if mean > 0 else math.inf,
        p99_over_p50=p99 / p50 if p50 > 0 else math.inf,
        duration_s=float(t.sum()) / 1e3 if duration_s is None else duration_s,
    )


def time_calls(
    fn: Callable[[], object],
    *,
    runs: int,
    warmup: int,
    min_duration_s: float = 0.0,
    timer: Timer = perf_counter_ns,
    max_runs: int = 1_000_000,
) -> np.ndarray:
    """Call `fn` `warmup` times untimed, then time calls until ≥ `runs` were timed and ≥
    `min_duration_s` seconds (by `timer`) have passed, at most `max_runs`. Returns (n,) float64
    milliseconds."""
    for _ in range(warmup):
        fn()
    times: list[int] = []
    deadline = timer() + int(min_duration_s * 1e9)
    while len(times) < max_runs:
        t0 = timer()
        fn()
        t1 = timer()
        times.append(t1 - t0)
        if len(times) >= runs and t1 >= deadline:
            break
    return np.asarray(times, dtype=np.float64) / 1e6


@dataclass(frozen=True)
class Guard:
    """Stability thresholds: re-measure (then flag) when cv > max_cv or p99/p50 > max_p99_over_p50."""

    max_cv: float = 0.5
    max_p99_over_p50: float = 3.0

    def unstable(self, s: LatencyStats) -> bool:
        return s.cv > self.max_cv or s.p99_over_p50 > self.max_p99_over_p50


@dataclass(frozen=True)
class GuardedLatency:
    """The kept distribution, whether it is still unstable, and every attempt's (cv, p99/p50)."""

    stats: LatencyStats
    unstable: bool
    attempts: list[dict[str, float]]


def latency_fields(guarded: GuardedLatency) -> dict[str, float | int | bool]:
    """The variant columns of a guarded measurement (VARIANT_PROTOCOL_FIELDS' latency part):
    percentiles, mean ± std, min in ms, the count of timed calls, CV, and the unstable flag."""
    s = guarded.stats
    return {
        "latency_p50_ms": s.p50_ms,
        "latency_p95_ms": s.p95_ms,
        "latency_p90_ms": s.p90_ms,
        "latency_p99_ms": s.p99_ms,
        "latency_mean_ms": s.mean_ms,
        "latency_std_ms": s.std_ms,
        "latency_min_ms": s.min_ms,
        "latency_count": s.count,
        "latency_cv": s.cv,
        "latency_unstable": guarded.unstable,
    }


def measure_guarded(
    fn: Callable[[], object],
    *,
    runs: int,
    warmup: int,
    min_duration_s: float,
    guard: Guard,
    remeasure: bool = True,
    timer: Timer = perf_counter_ns,
) -> GuardedLatency:
    """`time_calls` + `summarize`, repeated once (warm-up included) when the guard finds the first
    distribution unstable and `remeasure` is set; the last attempt is kept."""
    attempts: list[dict[str, float]] = []
    for _ in range(2 if remeasure else 1):
        times = time_calls(fn, runs=runs, warmup=warmup, min_duration_s=min_duration_s, timer=timer)
        stats = summarize(times)
        attempts.append({"cv": stats.cv, "p99_over_p50": stats.p99_over_p50, "p50_ms": stats.p50_ms})
        if not guard.unstable(stats):
            return GuardedLatency(stats, False, attempts)
    return GuardedLatency(stats, True, attempts)
