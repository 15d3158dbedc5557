"""Measure one stored TFLite file on the machine this process runs on: what a device-labelled
worker does for a measurement job (issue 18 item 4).

The figures come from the one harness (worker.engine.measure): the same interpreter set-up and
the same latency protocol a training worker applies to the variants it produces, with the run's
own MeasurementSpec, so a device figure and the worker's own figure differ only by the machine.
Quality is not measured again (the model's accuracy does not depend on where it runs), so the
input is one synthetic batch-1 example of the model's input shape and dtype (standard normal,
seed 0, quantized as the harness quantizes real data): the networks optiboard builds run the
same ops whatever the values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runspec.spec import MeasurementSpec
from worker.engine.hardware import fingerprint
from worker.engine.measure import LiteRunner, time_calls


def synthetic_example(runner: LiteRunner) -> np.ndarray:
    """One float32 example of the interpreter's input shape with batch 1, shape (1, *input)."""
    shape = [1, *(int(d) for d in runner.inp["shape"][1:])]
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def latency_figures(times_s: np.ndarray) -> dict[str, Any]:
    """Summary of timed runs (seconds, shape (n,)) in milliseconds: p50/p90/p95/p99 (numpy's
    linear-interpolation percentiles), mean, population std, min, count and the coefficient of
    variation std/mean."""
    ms = np.asarray(times_s, dtype=np.float64) * 1e3
    mean = float(ms.mean())
    std = float(ms.std())
    p50, p90, p95, p99 = (float(v) for v in np.percentile(ms, [50, 90, 95, 99]))
    return {
        "latency_p50_ms": p50,
        "latency_p90_ms": p90,
        "latency_p95_ms": p95,
        "latency_p99_ms": p99,
        "latency_mean_ms": mean,
        "latency_std_ms": std,
        "latency_min_ms": float(ms.min()),
        "latency_count": int(ms.size),
        "latency_cv": std / mean if mean > 0 else None,
    }


def measure_file(path: Path, fmt: str, measurement: MeasurementSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measure the TFLite file at `path` (variant format `fmt`, a `tflite-*`) here.

    Returns (figures, fingerprint): figures keyed as backend.store.records.MEASUREMENT_FIGURES
    (latencies in ms at batch 1, one interpreter thread), and the hardware fingerprint of this
    process (worker.engine.hardware.fingerprint) with `threads`.
    Raises ValueError for a format that is not TFLite; the interpreter's errors otherwise.
    """
    if not fmt.startswith("tflite"):
        raise ValueError(f"only TFLite variants are measured on a device, not {fmt!r}")
    runner = LiteRunner(path)
    times = time_calls(runner.single(synthetic_example(runner)), measurement.latency_runs, measurement.warmup_runs)
    figures = {**latency_figures(times), "latency_threads": 1}
    return figures, {**fingerprint(), "threads": 1}
