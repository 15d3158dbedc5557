"""The latency protocol applied to a TFLite file in LiteRT (docs/techniques.md, "Latency protocol").

For each thread count (1, the headline; then every core the worker may run on,
`len(os.sched_getaffinity(0))`, when that is more than 1 and the protocol is `full`):
1. init: a fresh `Interpreter(model_path, num_threads)` plus `allocate_tensors()` at the file's own
   input shape (batch 1), timed together (`init_ms`);
2. the input is set once (a real test example, quantised for integer inputs) and the first
   `invoke()` timed alone (`first_inference_ms`: kernels' lazy set-up, XNNPACK weight packing);
3. `worker.engine.latency.measure_guarded` on `invoke`: warm-up runs, then the larger of
   `latency_runs` runs or `min_duration_s` seconds, re-measured once if unstable (full only).
The default delegate is LiteRT's: XNNPACK, applied by the interpreter (OpResolverType.AUTO). Its
share of ops comes from `Interpreter._get_ops_details()` (LiteRT 2.x keeps no public API for
this): after delegation the node list holds the model's original nodes plus one `DELEGATE` node
per partition, whose outputs are the partition's outputs and whose inputs are its boundary
inputs; an original node is delegated when it is reached walking back from a DELEGATE node's
outputs through producers without crossing that node's inputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from runspec.spec import MeasurementSpec
from worker.engine.latency import Guard, GuardedLatency, Timer, latency_fields, measure_guarded
from worker.engine.native_output import INTERPRETER_CHATTER, quietly

DEFAULT_DELEGATE = "XNNPACK"
TIMER_NAME = "time.perf_counter_ns around Interpreter.invoke (input set once, output not read)"


def quantize_input(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """`x` (float) in the input tensor's dtype: int8/uint8 inputs through its (scale, zero point)."""
    dtype = detail["dtype"]
    if dtype in (np.int8, np.uint8):
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def delegation(ops: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{name, delegated_ops, total_ops} from `Interpreter._get_ops_details()` after allocation
    (see the module docstring); `total_ops` counts the model's own nodes (DELEGATE nodes excluded)."""
    own = [o for o in ops if o["op_name"] != "DELEGATE"]
    producer = {int(t): o["index"] for o in own for t in o["outputs"]}
    by_index = {o["index"]: o for o in own}
    covered: set[int] = set()
    for d in (o for o in ops if o["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in d["inputs"]}
        stack = [int(t) for t in d["outputs"]]
        while stack:
            t = stack.pop()
            if t in boundary or t not in producer or producer[t] in covered:
                continue
            covered.add(producer[t])
            stack.extend(int(i) for i in by_index[producer[t]]["inputs"] if i >= 0)
    return {"name": DEFAULT_DELEGATE, "delegated_ops": len(covered), "total_ops": len(own)}


def _startup(path: Path, threads: int, x1: np.ndarray) -> tuple[Interpreter, float, float, dict[str, Any]]:
    def load() -> tuple[Interpreter, int]:
        t0 = perf_counter_ns()
        interp = Interpreter(model_path=str(path), num_threads=threads)
        interp.allocate_tensors()
        return interp, perf_counter_ns() - t0

    interp, init_ns = quietly(load, INTERPRETER_CHATTER)
    detail = interp.get_input_details()[0]
    interp.set_tensor(detail["index"], quantize_input(x1.reshape(detail["shape"]), detail))
    t0 = perf_counter_ns()
    interp.invoke()
    first_ns = perf_counter_ns() - t0
    return interp, init_ns / 1e6, first_ns / 1e6, delegation(interp._get_ops_details())


def _summary(g: GuardedLatency, threads: int) -> dict[str, Any]:
    s = g.stats
    return {
        "threads": threads,
        "p50_ms": s.p50_ms,
        "p90_ms": s.p90_ms,
        "p99_ms": s.p99_ms,
        "mean_ms": s.mean_ms,
        "std_ms": s.std_ms,
        "min_ms": s.min_ms,
        "count": s.count,
        "cv": s.cv,
        "unstable": g.unstable,
    }


def measure_lite(
    path: Path, x1: np.ndarray, m: MeasurementSpec, *, timer: Timer = perf_counter_ns
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the protocol (`m.protocol` full or quick; not called for off) on the .tflite at `path`
    with `x1` ((1, ...) float32, one test example). Returns (fields, extra): fields are the
    VariantResult latency fields of the 1-thread run (ms; p50/p95 included); extra holds
    `latency_all_cores` (full, more than one core; else None), `delegate` and `protocol`."""
    full = m.protocol == "full"
    guard = Guard(m.max_cv, m.max_p99_over_p50)
    min_duration_s = m.min_duration_s if full else 0.0
    cores = len(os.sched_getaffinity(0))

    def run(threads: int) -> tuple[GuardedLatency, float, float, dict[str, Any]]:
        interp, init_ms, first_ms, delegate = _startup(path, threads, x1)
        g = measure_guarded(
            interp.invoke,
            runs=m.latency_runs,
            warmup=m.warmup_runs,
            min_duration_s=min_duration_s,
            guard=guard,
            remeasure=full,
            timer=timer,
        )
        return g, init_ms, first_ms, delegate

    one, init_ms, first_ms, delegate = run(1)
    load_avg = os.getloadavg()[0]
    all_cores = _summary(run(cores)[0], cores) if full and cores > 1 else None
    fields = {
        **latency_fields(one),
        "latency_threads": 1,
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "load_avg_1m": load_avg,
    }
    extra = {
        "latency_all_cores": all_cores,
        "delegate": delegate,
        "protocol": {
            "mode": m.protocol,
            "runtime": "litert",
            "warmup_runs": m.warmup_runs,
            "runs": m.latency_runs,
            "min_duration_s": min_duration_s,
            "threads": 1,
            "all_cores_threads": cores if all_cores else None,
            "delegate": f"{DEFAULT_DELEGATE} (LiteRT default)",
            "timer": TIMER_NAME,
            "batch": 1,
            "guard": {"max_cv": guard.max_cv, "max_p99_over_p50": guard.max_p99_over_p50},
            "attempts": one.attempts,
            "p99_over_p50": one.stats.p99_over_p50,
            "duration_s": one.stats.duration_s,
        },
    }
    return fields, extra
