"""Real processes for tests: the API (uvicorn), Celery workers and `optiboard up`.

Nothing here is a fake: each helper starts the same command a user runs, with settings in the
environment, and waits for it to answer.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
TERMINAL = {"succeeded", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stack_env(*, data_dir: Path, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIBOARD_")}
    env.update(
        {
            "OPTIBOARD_DATA_DIR": str(data_dir),
            "OPTIBOARD_DATABASE_URL": database_url,
            "OPTIBOARD_REDIS_URL": redis_url,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def cli(args: list[str], env: dict[str, str], *, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


def live_child(parent: psutil.Process, match: Callable[[psutil.Process], bool]) -> psutil.Process | None:
    """The first direct child of `parent` that `match` accepts and that is not a zombie (one that
    exited and was not reaped yet), or None."""
    for child in parent.children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and match(child):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # not ready yet
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else "")
    )


class Api:
    def __init__(self, env: dict[str, str], *, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = cli(["api", "--port", str(self.port), "--host", "127.0.0.1"], env, log=log)
        self.log = log
        wait_for(self._ready, timeout=60, what=f"API on {self.url} (log {log})")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"API exited: {self.log.read_text()[-2000:]}")
        return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200

    def stop(self) -> None:
        stop(self.proc)


class Worker:
    def __init__(self, env: dict[str, str], *, log: Path, name: str = "worker@%h") -> None:
        self.proc = cli(["worker", "--name", name], env, log=log)
        self.log = log

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        return stop(self.proc, sig=sig, timeout=60)


class Client:
    """A thin authenticated HTTP client with helpers the tests share."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post("/api/runs", json=spec)
        assert r.status_code == 201, r.text
        return r.json()

    def run(self, run_id: int) -> dict[str, Any]:
        r = self.http.get(f"/api/runs/{run_id}")
        r.raise_for_status()
        return r.json()

    def wait_terminal(self, run_id: int, timeout: float = 240) -> dict[str, Any]:
        return wait_for(
            lambda: (r := self.run(run_id))["status"] in TERMINAL and r,
            timeout=timeout,
            interval=0.5,
            what=f"run {run_id} to end",
        )

    def close(self) -> None:
        self.http.close()


def tiny_spec(name: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """The seed CNN on digits, small enough to train in seconds."""
    spec: dict[str, Any] = {
        "name": name,
        "experiment": overrides.pop("experiment", "tests"),
        "dataset": {"name": "digits"},
        "training": {"epochs": 2, "batch_size": 32, "log_every_n_batches": 5},
        "measurement": {"protocol": "quick", "latency_runs": 10, "warmup_runs": 2, "throughput_batch": 8},
        "exports": ["float32"],
    }
    spec.update(overrides)
    return spec
