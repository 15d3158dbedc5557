"""Stopping a worker mid-run never leaves the run stuck in `running`.

Two ways a worker goes away in a deployment: `docker stop` (SIGTERM to the container's
process, forwarded by `optiboard worker --gpus` to each Celery worker: a warm shutdown that
finishes the job) and a kill (SIGKILL after the grace period, an OOM kill, a lost host: the
run's heartbeat goes stale and the API's reaper requeues it for another worker).
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_token
from tests.stack import TERMINAL, Api, Client, Worker, cli, stack_env, stop, tiny_spec, wait_for

pytestmark = pytest.mark.slow
HOST = socket.gethostname()
# Short enough for a test, long enough that a busy 2-core machine never misses a heartbeat: the
# job's reporter writes one every second, so this is 12 missed in a row (the fault tests of
# tests/reliability use the same 12 s with two job processes training at once). Each kill test
# waits this long once.
HEARTBEAT_TIMEOUT_S = 12


def _env(tmp_path: Path, pg_url: str, redis_url: str) -> dict[str, str]:
    return stack_env(
        data_dir=tmp_path,
        database_url=pg_url,
        redis_url=redis_url,
        OPTIBOARD_REAPER_INTERVAL_S="1",
        OPTIBOARD_HEARTBEAT_TIMEOUT_S=str(HEARTBEAT_TIMEOUT_S),
        OPTIBOARD_MAX_ATTEMPTS="2",
    )


def _mid_run(client: Client, run_id: int) -> dict[str, Any]:
    """Wait until the run is training: running, with progress reported but not done."""
    return wait_for(
        lambda: (r := client.run(run_id))["status"] == "running" and r["progress"] > 0 and r,
        timeout=300,
        interval=0.2,
        what=f"run {run_id} to be mid-training",
    )


def test_sigterm_to_the_gpu_supervisor_finishes_the_run_then_exits(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    env = _env(tmp_path, pg_url, redis_url)
    api = Api(env, log=tmp_path / "api.log")
    client = Client(api.url, make_token(pg_url))
    supervisor = cli(["worker", "--gpus", "0"], env, log=tmp_path / "worker.log")
    try:
        run = client.submit(tiny_spec("sigterm", training={"epochs": 4, "batch_size": 32, "log_every_n_batches": 5}))
        during = _mid_run(client, run["id"])
        assert during["worker"] == f"gpu0@{HOST}" and during["progress"] < 1

        supervisor.send_signal(signal.SIGTERM)  # what `docker stop` does through tini
        assert supervisor.wait(timeout=600) == 0

        after = client.run(run["id"])
        # Warm shutdown: the job ran to its end before the worker exited.
        assert after["status"] == "succeeded", after
        assert after["attempt"] == 1
    finally:
        stop(supervisor, timeout=60)
        client.close()
        api.stop()


def test_killed_worker_mid_run_is_requeued_and_finished_by_another_worker(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    env = _env(tmp_path, pg_url, redis_url)
    api = Api(env, log=tmp_path / "api.log")
    client = Client(api.url, make_token(pg_url))
    first = Worker(env, log=tmp_path / "first.log", name="first@%h")
    second: Worker | None = None
    try:
        run = client.submit(tiny_spec("sigkill"))
        during = _mid_run(client, run["id"])
        assert during["worker"] == f"first@{HOST}"

        # The whole worker (main process and the job's child) dies without a word.
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=30)
        assert client.run(run["id"])["status"] == "running"  # nobody has noticed yet

        # The reaper notices the silence and hands the run back to the queue.
        requeued = wait_for(
            lambda: (r := client.run(run["id"]))["status"] != "running" and r,
            timeout=HEARTBEAT_TIMEOUT_S * 6,
            what="the reaper to requeue",
        )
        assert requeued["status"] == "queued", requeued
        assert "worker lost" in (requeued["error"] or "")

        second = Worker(env, log=tmp_path / "second.log", name="second@%h")
        final = client.wait_terminal(run["id"], timeout=600)
        assert final["status"] == "succeeded", final
        assert final["worker"] == f"second@{HOST}"
        assert final["attempt"] == 2
    finally:
        if first.proc.poll() is None:
            first.stop()
        if second is not None:
            second.stop()
        client.close()
        api.stop()


def test_run_killed_on_its_last_attempt_fails_instead_of_hanging(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    env = {**_env(tmp_path, pg_url, redis_url), "OPTIBOARD_MAX_ATTEMPTS": "1"}
    api = Api(env, log=tmp_path / "api.log")
    client = Client(api.url, make_token(pg_url))
    worker = Worker(env, log=tmp_path / "worker.log", name="only@%h")
    try:
        run = client.submit(tiny_spec("last-attempt"))
        assert run["max_attempts"] == 1
        _mid_run(client, run["id"])
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=30)
        final = wait_for(
            lambda: (r := client.run(run["id"]))["status"] in TERMINAL and r,
            timeout=HEARTBEAT_TIMEOUT_S * 6,
            what="the reaper to fail the run",
        )
        assert final["status"] == "failed"
        assert "worker lost" in (final["error"] or "")
    finally:
        if worker.proc.poll() is None:
            worker.stop()
        client.close()
        api.stop()
