"""Issue 18's figures for the latency protocol, side by side in one run (docs/benchmarks.md, §8):

- stability: the same .tflite measured `--repeats` times in a row by the harness (full protocol,
  1 thread): the spread of p50 around its median;
- agreement: the harness's p50 against a plain LiteRT loop in a fresh process (same threads, one
  `invoke` timed at a time, no optiboard code), seed CNN float32 and int8;
- cost: seconds `measure_variant` takes per variant with the full protocol minus with `off`;
- load: the same pair measured while `--hogs` busy-loop processes run, to see the guard act.

    nice -n 5 .venv/bin/python bench/measurement_protocol.py --out bench/results/measurement_protocol.json

The seed CNN is built for digits (8×8×1) and converted untrained: latency depends on the graph,
not on the weights' values (int8 calibration uses 100 training images).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

PLAIN_LOOP = r"""
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, threads, warmup, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
it = Interpreter(model_path=path, num_threads=threads)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
for _ in range(warmup):
    it.invoke()
t = []
for _ in range(runs):
    a = time.perf_counter_ns(); it.invoke(); t.append(time.perf_counter_ns() - a)
t.sort()
print(json.dumps({"p50_ms": t[len(t) // 2] / 1e6, "runs": runs}))
"""


def seed_files(out: Path) -> tuple[dict[str, Path], Any]:
    from runspec.spec import RunSpec
    from worker.engine.data import load_data
    from worker.engine.export import representative_samples, to_tflite
    from worker.engine.measure import TestSet
    from worker.engine.models import build_model

    spec = RunSpec.model_validate({"dataset": {"name": "digits"}})
    data = load_data(spec.dataset, lambda _: Path())
    model = build_model(spec.model, data.input_shape, data.classes, spec.training.regularization)
    rep = representative_samples(data.x_train, 100, 0)
    files = {f: to_tflite(model, f, out / f"seed_{f}.tflite", representative=rep) for f in ("float32", "int8")}
    return files, TestSet(data.x_test, data.y_test, data.classes)


def plain_p50(path: Path, threads: int = 1, runs: int = 20_000) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_LOOP, str(path), str(threads), "200", str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["p50_ms"])


def _hog(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/measurement_protocol.json"))
    args = parser.parse_args()

    from runspec.spec import MeasurementSpec
    from worker.engine.lite_protocol import measure_lite
    from worker.engine.measure import measure_variant

    full = MeasurementSpec()
    result: dict[str, Any] = {"cores": len(os.sched_getaffinity(0)), "load_avg_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        files, test = seed_files(Path(tmp))
        x1 = test.x[:1]
        for fmt, path in files.items():
            runs = []
            for _ in range(args.repeats):
                fields, extra = measure_lite(path, x1, full)
                runs.append({**fields, "attempts": len(extra["protocol"]["attempts"])})
            p50s = [r["latency_p50_ms"] for r in runs]
            med = statistics.median(p50s)
            plain = [plain_p50(path) for _ in range(3)]
            plain_med = statistics.median(plain)
            t0 = time.perf_counter()
            measure_variant(path, f"tflite-{fmt}", test, MeasurementSpec(protocol="off"))
            t_off = time.perf_counter() - t0
            t0 = time.perf_counter()
            measure_variant(path, f"tflite-{fmt}", test, full)
            t_full = time.perf_counter() - t0
            result[fmt] = {
                "p50_ms": p50s,
                "p90_ms": [r["latency_p90_ms"] for r in runs],
                "count": [r["latency_count"] for r in runs],
                "cv": [r["latency_cv"] for r in runs],
                "unstable": [r["latency_unstable"] for r in runs],
                "attempts": [r["attempts"] for r in runs],
                "load_avg_1m": [r["load_avg_1m"] for r in runs],
                "p50_median_ms": med,
                "p50_spread_pct": [100 * (p - med) / med for p in p50s],
                "plain_loop_p50_ms": plain,
                "harness_vs_plain_pct": 100 * (med - plain_med) / plain_med,
                "seconds_off": t_off,
                "seconds_full": t_full,
                "seconds_added_by_protocol": t_full - t_off,
            }
        # under load: busy loops on every core while the pair is measured once more
        stop_at = time.time() + 30
        hogs = [multiprocessing.Process(target=_hog, args=(stop_at,)) for _ in range(args.hogs)]
        for h in hogs:
            h.start()
        time.sleep(1)
        loaded = {}
        for fmt, path in files.items():
            fields, extra = measure_lite(path, x1, full)
            loaded[fmt] = {
                "p50_ms": fields["latency_p50_ms"],
                "p90_ms": fields["latency_p90_ms"],
                "cv": fields["latency_cv"],
                "p99_over_p50": extra["protocol"]["p99_over_p50"],
                "unstable": fields["latency_unstable"],
                "attempts": len(extra["protocol"]["attempts"]),
                "load_avg_1m": fields["load_avg_1m"],
            }
        for h in hogs:
            h.terminate()
            h.join()
        result["under_load"] = {"hogs": args.hogs, **loaded}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    json.dump(result, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
