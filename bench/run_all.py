"""Every benchmark of docs/benchmarks.md, one after the other (never two at once: they share the cores), with
the arguments docs/benchmarks.md quotes. Results land in bench/results/*.json and
bench/results/pipeline_speed.md; a summary of the headline figures is printed at the end.

    make bench                       # or: .venv/bin/python bench/run_all.py [--only api_load,vs_mlflow]

Takes 10–25 minutes on a 2-core machine; vs_mlflow needs MLflow in bench/.mlflow-venv (see
docs/benchmarks.md) and otherwise measures optiboard alone and says so.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
RESULTS = REPO / "bench" / "results"

STEPS: dict[str, list[str]] = {
    "api_load_sqlite": ["bench/api_load.py", "--seconds", "10", "--repeats", "3"],
    "api_load_postgresql": ["bench/api_load.py", "--db", "postgresql", "--seconds", "10", "--repeats", "3"],
    "vs_mlflow": ["bench/vs_mlflow.py", "--points", "200000", "--repeats", "3", "--reads", "5"],
    "compare_query": ["bench/compare_query.py", "--keep", "--repeats", "7"],
    "memory": ["bench/memory.py", "--rounds", "3", "--compare-runs", "100"],
    "dashboard": ["bench/dashboard.py", "--runs", "100", "--repeats", "3"],
    "overhead": ["bench/overhead.py", "--dataset", "digits", "--repeats", "9", "--latency-runs", "11"],
    "pipeline": ["bench/pipeline_speed.py", "--mixed-precision", "--out", "bench/results/pipeline_speed.md"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated step names: " + ", ".join(STEPS))
    args = ap.parse_args()
    chosen = [s for s in args.only.split(",") if s] or list(STEPS)
    unknown = set(chosen) - set(STEPS)
    if unknown:
        ap.error(f"unknown steps: {sorted(unknown)}")
    took: dict[str, float] = {}
    for name in chosen:
        print(f"== {name}: {' '.join(STEPS[name])}", flush=True)
        t = time.monotonic()
        result = subprocess.run([PY, *STEPS[name]], cwd=REPO)
        took[name] = time.monotonic() - t
        if result.returncode:
            print(f"!! {name} exited {result.returncode}", flush=True)
    print(json.dumps({k: round(v) for k, v in took.items()}, indent=2))


if __name__ == "__main__":
    main()
