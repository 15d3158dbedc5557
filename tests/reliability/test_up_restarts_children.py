"""`optiboard up` supervises its API and worker as it does its Redis: one that dies (killed,
crashed, out of memory) is started again and the terminal says so, instead of the whole service
stopping (the review killed the worker's main process and lost the dashboard with it). A child
that keeps dying stops everything, loudly (tests/reliability/test_embedded_redis_kill.py checks
that rule for Redis; it is the same `Restarts` policy)."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import psutil
import pytest

from tests.stack import cli, free_port, live_child, stack_env, stop, tiny_spec, wait_for

pytestmark = [pytest.mark.services, pytest.mark.tensorflow]  # tier: see tests/conftest.py


def _child(up: psutil.Process, role: str) -> psutil.Process | None:
    """The `cli.main <role>` process `up` started itself (not its own children)."""
    return live_child(up, lambda c: c.cmdline()[-1:] == [role])


def test_up_restarts_a_killed_worker_and_api(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    env = stack_env(data_dir=data, database_url=f"sqlite:///{data / 'optiboard.db'}", redis_url="")
    log = tmp_path / "up.log"
    proc = cli(["up", "--port", str(port)], env, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, timeout=90, what="optiboard up")
        up = psutil.Process(proc.pid)
        token = (data / "token").read_text().strip()
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

        worker = wait_for(lambda: _child(up, "worker"), timeout=30, what="the worker process")
        worker.send_signal(signal.SIGKILL)
        text = wait_for(
            lambda: "restarting it" in (t := log.read_text(errors="replace")) and t, timeout=15, what="the notice"
        )
        assert f"the worker (pid {worker.pid}) exited with signal SIGKILL; restarting it" in text
        assert "OPTIBOARD_HEARTBEAT_TIMEOUT_S" in text and "Stopping everything" not in text
        new_worker = wait_for(
            lambda: (c := _child(up, "worker")) and c.pid != worker.pid and c, timeout=15, what="a new worker"
        )
        # the new worker takes jobs
        run = http.post("/api/runs", json=tiny_spec("after-restart", training={"epochs": 1, "batch_size": 64})).json()
        done = wait_for(
            lambda: (r := http.get(f"/api/runs/{run['id']}").json())["status"] in ("succeeded", "failed") and r,
            timeout=240,
            what="the run on the restarted worker",
        )
        assert done["status"] == "succeeded", done["error"]
        assert done["hardware"]["pid"] != worker.pid

        api = wait_for(lambda: _child(up, "api"), timeout=10, what="the API process")
        api.send_signal(signal.SIGKILL)
        wait_for(
            lambda: f"the API (pid {api.pid}) exited with signal SIGKILL" in log.read_text(errors="replace"),
            timeout=15,
            what="the API notice",
        )
        wait_for(lambda: http.get("/healthz").status_code == 200, timeout=60, what="the restarted API")
        assert http.get(f"/api/runs/{run['id']}").json()["status"] == "succeeded"  # same data
        assert proc.poll() is None and new_worker.is_running()
        http.close()
    finally:
        stop(proc)
