"""optiboard's overhead over doing the same work by hand, and submit-to-start latency.

Side by side, alternating: the seed recipe (seed CNN, 3 epochs, batch 32, float32 and int8
exports, every variant measured) submitted through optiboard (real API + one warm Celery worker,
SQLite, Redis), timed from just before the POST to the run's `finished_at`; and the same recipe
through the same engine code in a warm plain Python process with no optiboard at all
(bench/plain_recipe.py). Both sides also report CPU seconds: the whole optiboard stack's (job
process, Celery parent, API) against the plain process's, each including the between-job
cleanup; on a shared machine that ratio moves far less than the wall-time one. Then --latency-runs tiny jobs give the submit-to-start latency (POST to
the run's `started_at`) with the worker warm and idle. The worker's job-process RSS is sampled
after every job (figure 7: memory released between jobs); `worker_idle_rss_slope_mb_per_job` is
the least-squares slope of the idle RSS over the identical latency jobs.

    .venv/bin/python bench/overhead.py --dataset digits --repeats 3
    .venv/bin/python bench/overhead.py --dataset fashion_mnist --repeats 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from harness import REPO, machine, median, stack  # type: ignore[import-not-found]

TERMINAL = {"succeeded", "failed", "cancelled"}


def seed_recipe(dataset: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "experiment": "overhead-bench",
        "dataset": {"name": dataset},
        "model": {"architecture": "seed_cnn"},
        "training": {"epochs": 3, "batch_size": 32},
        "exports": ["float32", "int8"],
    }


def tiny(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "experiment": "overhead-bench",
        "dataset": {"name": "digits", "limit_train": 200},
        "model": {"architecture": "mlp"},
        "training": {"epochs": 1, "batch_size": 32},
        "measurement": {"latency_runs": 10, "warmup_runs": 0, "throughput_batch": 8},
        "exports": [],
    }


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def job_rss(worker_pid: int) -> int:
    """RSS of the biggest process under the worker (the prefork child that runs jobs)."""
    try:
        procs = psutil.Process(worker_pid).children(recursive=True)
        return max((p.memory_info().rss for p in procs), default=0)
    except psutil.Error:
        return 0


def slope_per_job(values: list[float]) -> float:
    """Least-squares slope of values against job number (MB per job for RSS samples)."""
    n = len(values)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(values) / n
    return sum((i - mx) * (v - my) for i, v in enumerate(values)) / sum((i - mx) ** 2 for i in range(n))


def stack_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes and all their children."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    return total


def submit_and_wait(
    http: httpx.Client, spec: dict[str, Any], worker_pid: int, api_pid: int | None = None
) -> dict[str, Any]:
    cpu_pids = [worker_pid] + ([api_pid] if api_pid else [])
    cpu0 = stack_cpu(cpu_pids)
    t0 = time.time()
    r = http.post("/api/runs", json=spec)
    r.raise_for_status()
    run_id = r.json()["id"]
    peak = 0
    time.sleep(0.05)
    while True:
        run = http.get(f"/api/runs/{run_id}").json()
        peak = max(peak, job_rss(worker_pid))
        if run["status"] in TERMINAL:
            break
        # The times come from the run's own timestamps: polling slowly keeps this client's load
        # (which the by-hand side does not have) off the measurement.
        time.sleep(1.0)
    if run["status"] != "succeeded":
        raise RuntimeError(f"run {run_id} {run['status']}: {run.get('error')}")
    # Let the job process settle (it frees the job's memory after reporting it finished)
    # before reading its idle RSS and CPU: wait until its CPU stops moving.
    before, deadline = stack_cpu(cpu_pids), time.time() + 10
    while time.time() < deadline:
        time.sleep(0.3)
        now = stack_cpu(cpu_pids)
        if now - before < 0.02:
            break
        before = now
    return {
        "run_id": run_id,
        "wall_s": ts(run["finished_at"]) - t0,
        # the whole stack's CPU (job process, Celery parent, API), including the
        # worker's between-job cleanup (the plain side counts its own the same way)
        "cpu_s": stack_cpu(cpu_pids) - cpu0,
        "job_s": ts(run["finished_at"]) - ts(run["started_at"]),
        "log": http.get(f"/api/runs/{run_id}/logs").json()["lines"],
        "start_latency_s": ts(run["started_at"]) - t0,
        "peak_rss": peak,
        "idle_rss_after": job_rss(worker_pid),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="digits", choices=["digits", "fashion_mnist"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--latency-runs", type=int, default=11)
    ap.add_argument(
        "--idle-wait",
        type=float,
        default=3.0,
        help="seconds between latency jobs: the worker frees the last job's memory after "
        "reporting it finished, and the figure is for an idle warm worker",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or REPO / "bench" / "results" / f"overhead_{args.dataset}.json"
    res: dict[str, Any] = {
        "machine": machine(),
        "dataset": args.dataset,
        "repeats": args.repeats,
        "recipe": seed_recipe(args.dataset, "seed"),
    }
    plain = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "plain_recipe.py")],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    plain_cpu: list[float] = []

    def plain_run(spec: dict[str, Any]) -> float:
        assert plain.stdin and plain.stdout
        plain.stdin.write(json.dumps(spec) + "\n")
        plain.stdin.flush()
        answer = json.loads(plain.stdout.readline())
        plain_cpu.append(float(answer["cpu_seconds"]))
        return float(answer["seconds"])

    with (
        tempfile.TemporaryDirectory(prefix="ob-overhead-") as tmp,
        stack(Path(tmp), worker=True, TF_CPP_MIN_LOG_LEVEL="3") as st,
    ):
        http = httpx.Client(base_url=st.url, headers=st.headers(), timeout=60)
        assert st.worker is not None
        wpid, api_pid = st.worker.proc.pid, st.api.proc.pid
        # Warm both sides the same way: TensorFlow imported, one small job run.
        submit_and_wait(http, tiny("warm-up"), wpid)
        plain_run(tiny("warm-up"))
        ob, by_hand, jobs = [], [], []
        for i in range(args.repeats):
            r = submit_and_wait(http, seed_recipe(args.dataset, f"seed-{i}"), wpid, api_pid)
            jobs.append(r)
            ob.append(r["wall_s"])
            by_hand.append(plain_run(seed_recipe(args.dataset, f"seed-{i}")))
            print(f"repeat {i}: optiboard {ob[-1]:.2f} s, by hand {by_hand[-1]:.2f} s", flush=True)
        res["optiboard_s"], res["plain_s"] = ob, by_hand
        res["optiboard_job_s"] = [j["job_s"] for j in jobs]
        res["optiboard_last_log"] = jobs[-1]["log"]
        res["optiboard_median_s"], res["plain_median_s"] = median(ob), median(by_hand)
        res["ratio_of_medians"] = median(ob) / median(by_hand)
        res["ratio_per_pair"] = [round(a / b, 3) for a, b in zip(ob, by_hand, strict=True)]
        res["ratio_per_pair_median"] = median([a / b for a, b in zip(ob, by_hand, strict=True)])
        # CPU seconds are far less sensitive than wall time to other jobs on a shared machine
        ob_cpu, by_hand_cpu = [j["cpu_s"] for j in jobs], plain_cpu[1:]
        res["optiboard_cpu_s"], res["plain_cpu_s"] = ob_cpu, by_hand_cpu
        res["cpu_ratio_of_medians"] = median(ob_cpu) / median(by_hand_cpu)
        res["cpu_ratio_per_pair"] = [round(a / b, 3) for a, b in zip(ob_cpu, by_hand_cpu, strict=True)]
        lat = []
        for i in range(args.latency_runs):
            time.sleep(args.idle_wait)
            r = submit_and_wait(http, tiny(f"latency-{i}"), wpid)
            jobs.append(r)
            lat.append(r["start_latency_s"])
        res["start_latency_ms"] = sorted(round(1000 * x, 1) for x in lat)
        res["start_latency_p50_ms"] = 1000 * median(lat)
        res["worker_job_rss_mb"] = [
            {
                "run": j["run_id"],
                "peak": round(j["peak_rss"] / 2**20),
                "job_s": round(j["job_s"], 2),
                "idle_after": round(j["idle_rss_after"] / 2**20),
            }
            for j in jobs
        ]
        # Figure 7: the latency jobs are the same tiny recipe again and again, so their idle RSS
        # after each job should be flat (a leak shows as a steady MB-per-job slope).
        lat_idle = [j["idle_rss_after"] / 2**20 for j in jobs[args.repeats :]]
        res["worker_idle_rss_slope_mb_per_job"] = round(slope_per_job(lat_idle), 2)
        http.close()
    plain.stdin.close()  # type: ignore[union-attr]
    plain.wait(timeout=60)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if k != "recipe"}, indent=2))


if __name__ == "__main__":
    main()
