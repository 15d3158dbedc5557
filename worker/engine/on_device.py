"""Measure one stored TFLite file on the machine this process runs on: what a device-labelled
worker does for a measurement job (issue 18 item 4).

The figures come from the one harness: the latency protocol a training worker applies to the
variants it produces (`worker.engine.lite_protocol.measure_lite`: warm-up, the larger of N runs
or T seconds at 1 thread and at all cores, the stability guard) and, with the `full` protocol,
the fresh-process peak memory (`worker.engine.footprint.peak_memory`), with the run's own
MeasurementSpec, so a device figure and the worker's own figure differ only by the machine. A
run whose spec turned the protocol `off` is measured with `quick` here: asking a device for its
latency is asking for the protocol. Quality is not measured again (a model's accuracy does not
depend on where it runs), so the input is one synthetic batch-1 example of the model's input
shape (standard normal, seed 0, quantised as the protocol quantises real data): the networks
optiboard builds run the same ops whatever the values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from runspec.spec import MeasurementSpec
from worker.engine.footprint import peak_memory
from worker.engine.hardware import fingerprint
from worker.engine.lite_protocol import measure_lite


def synthetic_example(path: Path) -> np.ndarray:
    """One float32 example of the model's input shape with batch 1, shape (1, *input)."""
    shape = Interpreter(model_path=str(path)).get_input_details()[0]["shape"]
    return np.random.default_rng(0).standard_normal([1, *(int(d) for d in shape[1:])]).astype(np.float32)


def measure_file(
    path: Path, fmt: str, measurement: MeasurementSpec
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Measure the TFLite file at `path` (variant format `fmt`, a `tflite-*`) here.

    Returns (figures, fingerprint, extra): figures keyed as backend.store.records.MEASUREMENT_FIGURES
    (latencies in ms at batch 1, one interpreter thread; peak memory in bytes with the full
    protocol); the hardware fingerprint of this process (worker.engine.hardware.fingerprint) with
    `threads`; extra: the all-cores figures, the delegate's share of ops, the protocol as run
    and the memory measurement's details.
    Raises ValueError for a format that is not TFLite; the interpreter's errors otherwise.
    """
    if not fmt.startswith("tflite"):
        raise ValueError(f"only TFLite variants are measured on a device, not {fmt!r}")
    m = measurement if measurement.protocol != "off" else measurement.model_copy(update={"protocol": "quick"})
    figures, extra = measure_lite(path, synthetic_example(path), m)
    if m.protocol == "full":
        memory = peak_memory(path)
        figures["peak_memory_bytes"] = memory.pop("peak_memory_bytes")
        extra["memory"] = memory
    extra["input"] = "synthetic: standard normal, seed 0, batch 1"
    return figures, {**fingerprint(), "threads": 1}, extra
