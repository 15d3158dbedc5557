"""optiboard vs an MLflow tracking server, both on SQLite, same points, side by side.

Ingestion: the same N points through optiboard's `POST /api/runs/{id}/metrics` (batches of 1000,
the MLflow call's limit, and of 10,000) and through MLflow's `POST /api/2.0/mlflow/runs/log-batch`
(1000 metrics per call). Reading: one metric's full history through optiboard's
`GET /api/runs/{id}/metrics?keys=...` and MLflow's `GET /api/2.0/mlflow/metrics/get-history`.
Both servers: one process on 127.0.0.1, load from this process; request bodies are encoded before
the clock starts, so the servers are timed, not the JSON encoder here.

MLflow lives in its own virtualenv (it would otherwise pull its own pins into the project):

    python3 -m venv bench/.mlflow-venv && bench/.mlflow-venv/bin/pip install mlflow==3.17.2
    .venv/bin/python bench/vs_mlflow.py [--mlflow-venv bench/.mlflow-venv] [--points 200000]

Without an importable mlflow the script says so and measures optiboard alone.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from harness import REPO, machine, median, stack  # type: ignore[import-not-found]

from tests.stack import free_port, wait_for

KEYS = ("loss", "accuracy", "val_loss", "lr")


def make_points(n: int) -> list[tuple[str, int, float]]:
    steps = n // len(KEYS)
    return [(k, s, 1.0 / (s + 1) + i) for i, k in enumerate(KEYS) for s in range(steps)]


def find_mlflow(venv: Path | None) -> Path | None:
    candidates = [venv] if venv else [REPO / "bench" / ".mlflow-venv", Path("/tmp/mlflow-venv")]
    for v in candidates:
        py = v / "bin" / "python"
        if py.exists() and subprocess.run([str(py), "-c", "import mlflow"], capture_output=True).returncode == 0:
            return v
    return None


class MlflowServer:
    def __init__(self, venv: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "mlflow.log"
        cmd = [
            str(venv / "bin" / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{workdir / 'mlflow.db'}",
            "--default-artifact-root",
            str(workdir / "mlartifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(
            lambda: httpx.get(f"{self.url}/health", timeout=2).status_code == 200,
            timeout=180,
            what=f"mlflow server (log {self.log})",
        )
        self.version = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import mlflow; print(mlflow.__version__)"],
            capture_output=True,
            text=True,
        ).stdout.strip()

    def stop(self) -> None:
        from tests.stack import stop

        stop(self.proc)


def mlflow_ingest(http: httpx.Client, points: list[tuple[str, int, float]]) -> tuple[float, str]:
    r = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0", "start_time": int(time.time() * 1000)})
    r.raise_for_status()
    run_id = r.json()["run"]["info"]["run_id"]
    ts = int(time.time() * 1000)
    bodies = [
        json.dumps(
            {
                "run_id": run_id,
                "metrics": [{"key": k, "value": v, "timestamp": ts, "step": s} for k, s, v in points[i : i + 1000]],
            }
        ).encode()
        for i in range(0, len(points), 1000)
    ]
    t = time.perf_counter()
    for body in bodies:
        r = http.post("/api/2.0/mlflow/runs/log-batch", content=body, headers={"Content-Type": "application/json"})
        r.raise_for_status()
    return time.perf_counter() - t, run_id


def mlflow_history(http: httpx.Client, run_id: str, key: str) -> int:
    r = http.get(
        "/api/2.0/mlflow/metrics/get-history", params={"run_id": run_id, "metric_key": key, "max_results": 100_000}
    )
    r.raise_for_status()
    return len(r.json()["metrics"])


def optiboard_ingest(http: httpx.Client, points: list[tuple[str, int, float]], batch: int) -> tuple[float, int]:
    r = http.post("/api/runs", json={"name": f"ingest-{batch}", "experiment": "bench", "external": True})
    r.raise_for_status()
    run_id = r.json()["id"]
    ts = time.time()
    bodies = [
        json.dumps(
            {"points": [{"key": k, "step": s, "value": v, "wall_time": ts} for k, s, v in points[i : i + batch]]}
        ).encode()
        for i in range(0, len(points), batch)
    ]
    t = time.perf_counter()
    for body in bodies:
        r = http.post(f"/api/runs/{run_id}/metrics", content=body, headers={"Content-Type": "application/json"})
        r.raise_for_status()
    return time.perf_counter() - t, run_id


def optiboard_history(http: httpx.Client, run_id: int, key: str) -> int:
    r = http.get(f"/api/runs/{run_id}/metrics", params={"keys": key, "max_points": 100_000})
    r.raise_for_status()
    return len(r.json()["series"][key]["steps"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reads", type=int, default=5)
    ap.add_argument("--mlflow-venv", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "vs_mlflow.json")
    args = ap.parse_args()
    points = make_points(args.points)
    n = len(points)
    history_len = n // len(KEYS)
    res: dict[str, Any] = {"machine": machine(), "points": n, "history_points": history_len, "repeats": args.repeats}
    venv = find_mlflow(args.mlflow_venv)
    if venv is None:
        res["mlflow"] = "not importable: create bench/.mlflow-venv (see the docstring)"
        print("mlflow is not importable in bench/.mlflow-venv or /tmp/mlflow-venv: optiboard alone")
    with tempfile.TemporaryDirectory(prefix="ob-vs-mlflow-") as tmp:
        work = Path(tmp)
        (work / "ml").mkdir()
        server = MlflowServer(venv, work / "ml") if venv else None
        try:
            with stack(work / "optiboard") as st:
                ob = httpx.Client(base_url=st.url, headers=st.headers(), timeout=600)
                ml = httpx.Client(base_url=server.url, timeout=600) if server else None
                if server:
                    res["mlflow"] = server.version
                # Interleaved, so both see the same machine load: each repeat runs every side once.
                secs: dict[str, list[float]] = {"ob1000": [], "ob10000": [], "mlflow": []}
                ob_run, ml_run = 0, ""
                for _ in range(args.repeats):
                    dt, ob_run = optiboard_ingest(ob, points, 1000)
                    secs["ob1000"].append(dt)
                    dt, ob_run = optiboard_ingest(ob, points, 10_000)
                    secs["ob10000"].append(dt)
                    if ml:
                        dt, ml_run = mlflow_ingest(ml, points)
                        secs["mlflow"].append(dt)
                for name, xs in secs.items():
                    if xs:
                        res[f"{name}_ingest_pps"] = n / median(xs)
                        res[f"{name}_ingest_runs"] = [round(n / x) for x in xs]
                assert optiboard_history(ob, ob_run, "loss") == history_len
                if ml:
                    assert mlflow_history(ml, ml_run, "loss") == history_len
                reads: dict[str, list[float]] = {"ob": [], "mlflow": []}
                for _ in range(args.reads):
                    reads["ob"].append(_t(lambda: optiboard_history(ob, ob_run, "loss")))
                    if ml:
                        reads["mlflow"].append(_t(lambda: mlflow_history(ml, ml_run, "loss")))
                for name, xs in reads.items():
                    if xs:
                        res[f"{name}_history_pps"] = history_len / median(xs)
                        res[f"{name}_history_s"] = median(xs)
                ob.close()
                if ml:
                    ml.close()
        finally:
            if server:
                server.stop()
    if venv:
        res["ingest_ratio_1000"] = res["ob1000_ingest_pps"] / res["mlflow_ingest_pps"]
        res["ingest_ratio_10000"] = res["ob10000_ingest_pps"] / res["mlflow_ingest_pps"]
        res["history_ratio"] = res["ob_history_pps"] / res["mlflow_history_pps"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(
        json.dumps(
            {
                k: (round(v, 1) if isinstance(v, float) and math.isfinite(v) else v)
                for k, v in res.items()
                if not k.endswith("_runs")
            },
            indent=2,
        )
    )


def _t(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
