"""API memory while serving the compare page's data for 100 runs x 4 metrics x 10,000 steps.

Serves the SQLite database seeded by `bench/compare_query.py --keep` with the real API process
(one uvicorn worker) and samples its RSS (psutil, every 20 ms) while clients request, 4 at a time:
`GET /api/compare?runs=<100 ids>` (table + the three figures, loss curves included) and every
run's `GET /api/runs/{id}/metrics`. Also reports the end-to-end time of those requests. The
worker side of figure 7 (a job's memory released before the next job) is in bench/overhead.py.

    .venv/bin/python bench/compare_query.py --keep --backends sqlite   # once, seeds the file
    .venv/bin/python bench/memory.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
from harness import REPO, machine, median, stack  # type: ignore[import-not-found]

DB = Path("/tmp/ob-bench-compare/compare-100x10000.db")


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, default=DB)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument(
        "--compare-runs",
        type=int,
        default=100,
        help="runs per /api/compare request (the route may cap it: see the output)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "memory.json")
    args = ap.parse_args()
    if not args.db.exists():
        raise SystemExit(f"{args.db} is missing: run bench/compare_query.py --keep first")
    res: dict[str, Any] = {"machine": machine(), "db": str(args.db)}
    with tempfile.TemporaryDirectory(prefix="ob-mem-") as tmp, stack(Path(tmp), db_url=f"sqlite:///{args.db}") as st:
        http = httpx.Client(base_url=st.url, headers=st.headers(), timeout=600)
        ids = [
            r["id"] for r in http.get("/api/runs", params={"experiment": "compare-bench", "limit": 1000}).json()["data"]
        ]
        runs = ",".join(map(str, sorted(ids)[: args.compare_runs]))
        proc = psutil.Process(st.api.proc.pid)
        res["rss_idle_mb"] = proc.memory_info().rss / 2**20
        sampler = RssSampler(st.api.proc.pid)
        sampler.start()

        def compare() -> float:
            t = time.perf_counter()
            r = http.get("/api/compare", params={"runs": runs})
            r.raise_for_status()
            return time.perf_counter() - t

        def metrics(rid: int) -> float:
            t = time.perf_counter()
            r = http.get(f"/api/runs/{rid}/metrics", params={"max_points": 1000})
            r.raise_for_status()
            assert all(len(s["steps"]) <= 1000 for s in r.json()["series"].values())
            return time.perf_counter() - t

        with ThreadPoolExecutor(args.concurrency) as pool:
            compare_s = list(pool.map(lambda _: compare(), range(args.rounds)))
            metrics_s = list(pool.map(metrics, ids))
        sampler.stop_flag.set()
        sampler.join()
        res["runs"] = len(ids)
        res["compare_runs"] = min(len(ids), args.compare_runs)
        res["compare_request_s_median"] = median(compare_s)
        res["compare_request_s_all"] = [round(x, 2) for x in compare_s]
        res["run_metrics_request_ms_median"] = 1000 * median(metrics_s)
        res["rss_peak_mb"] = sampler.peak / 2**20
        res["rss_after_mb"] = proc.memory_info().rss / 2**20
        http.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
