"""Promises 3 and 4 on real processes: a Celery worker (two job processes) training real
TensorFlow runs, the API's maintenance loop, and a private redis-server. Faults are real: the
process training a run is SIGKILLed, a job is delivered twice, Redis is killed and restarted
without persistence (its queued messages are gone).

The tests share one stack and run in file order; each leaves it healthy for the next.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psutil
from celery import Celery
from sqlalchemy import text

from backend.dispatch.queue import TASK_EXECUTE_RUN
from tests.reliability import figures
from tests.reliability.conftest import HEARTBEAT_TIMEOUT_S, FaultStack
from tests.reliability.specs import long_spec, quick_spec
from tests.stack import wait_for

RUN_TIMEOUT_S = 420  # generous: the suite shares two cores with whatever else runs


def _running_with_points(stack: FaultStack, run_id: int, attempt: int = 1) -> dict[str, Any]:
    """Wait until the run's given attempt is training (it has stored points)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        run = stack.client.run(run_id)
        assert run["status"] in ("queued", "running"), f"run {run_id} ended early: {run['status']}"
        if run["status"] == "running" and run["attempt"] == attempt and stack.points(run_id) > 0:
            return run
        time.sleep(0.3)
    raise TimeoutError(f"run {run_id} attempt {attempt} never trained")


def _kill_job_process(stack: FaultStack, run: dict[str, Any]) -> int:
    """SIGKILL the prefork child that trains the run (its pid is in the run's hardware)."""
    pid = int(run["hardware"]["pid"])
    children = {p.pid for p in psutil.Process(stack.worker.proc.pid).children(recursive=True)}
    assert pid in children, f"pid {pid} is not a job process of the worker {children}"
    os.kill(pid, signal.SIGKILL)
    figures.add("faults injected: job process SIGKILLed")
    return pid


def _celery(stack: FaultStack) -> Celery:
    app = Celery("faults-test", broker=stack.redis.url)
    app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    return app


def _skips(stack: FaultStack, run_id: int) -> int:
    """Deliveries of this run's job that the worker skipped (Celery logs each return value)."""
    return sum(1 for line in stack.worker_log().splitlines() if "'skipped'" in line and f"'args': '[{run_id}]'" in line)


def _clean_points(stack: FaultStack, run_id: int) -> None:
    """No (run, key, step) twice, and every point belongs to the attempt that finished."""
    assert stack.duplicate_points() == 0
    with stack.engine.connect() as conn:
        started = conn.execute(text("SELECT started_at FROM runs WHERE id = :r"), {"r": run_id}).scalar_one()
        first = conn.execute(
            text("SELECT MIN(wall_time) FROM metric_points WHERE run_id = :r"), {"r": run_id}
        ).scalar_one()
    from datetime import UTC, datetime

    started_ts = datetime.fromisoformat(str(started)).replace(tzinfo=UTC).timestamp()
    assert first is not None and first >= started_ts - 1.0, "points of a lost attempt survived"


def test_the_same_job_delivered_three_times_runs_once(fault_stack: FaultStack) -> None:
    run = fault_stack.client.submit(quick_spec("delivered-thrice"))
    celery = _celery(fault_stack)
    for _ in range(2):  # the API sent one; two more copies of the same message
        celery.send_task(TASK_EXECUTE_RUN, args=[run["id"]], queue="train")
        figures.add("faults injected: duplicate deliveries")
    celery.close()
    end = fault_stack.client.wait_terminal(run["id"], timeout=RUN_TIMEOUT_S)
    assert end["status"] == "succeeded", end["error"]
    assert end["attempt"] == 1
    wait_for(lambda: _skips(fault_stack, run["id"]) == 2, timeout=120, what="both copies to be skipped")
    _clean_points(fault_stack, run["id"])


def test_cancel_works_for_queued_and_running_runs(fault_stack: FaultStack) -> None:
    c = fault_stack.client
    # Two long runs fill both job processes; the third waits in the queue.
    busy = [c.submit(long_spec(f"cancel-running-{i}", epochs=200)) for i in range(2)]
    queued = c.submit(quick_spec("cancel-queued"))
    for b in busy:
        _running_with_points(fault_stack, b["id"])
    assert c.run(queued["id"])["status"] == "queued"
    r = c.http.post(f"/api/runs/{queued['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"  # at once
    for b in busy:
        r = c.http.post(f"/api/runs/{b['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "running" and r.json()["cancel_requested"]
    for b in busy:
        end = c.wait_terminal(b["id"], timeout=180)
        assert end["status"] == "cancelled" and end["attempt"] == 1
        assert end["progress"] < 0.5  # it stopped at a batch, it did not train 200 epochs first
        assert fault_stack.points(b["id"]) > 0  # and kept its metrics
    # The queued run's job arrives later and is skipped: a terminal state never changes.
    wait_for(lambda: _skips(fault_stack, queued["id"]) == 1, timeout=180, what="its job to be skipped")
    end = c.run(queued["id"])
    assert end["status"] == "cancelled" and end["attempt"] == 0 and end["started_at"] is None
    kept = fault_stack.points(busy[0]["id"])
    assert c.http.post(f"/api/runs/{busy[0]['id']}/cancel").status_code == 409
    celery = _celery(fault_stack)
    celery.send_task(TASK_EXECUTE_RUN, args=[busy[0]["id"]], queue="train")  # a stray redelivery
    celery.close()
    wait_for(lambda: _skips(fault_stack, busy[0]["id"]) == 1, timeout=120, what="the stray job to be skipped")
    assert c.run(busy[0]["id"])["status"] == "cancelled"
    assert fault_stack.points(busy[0]["id"]) == kept


def test_sigkill_of_the_training_process_requeues_then_fails_at_the_cap(fault_stack: FaultStack) -> None:
    c = fault_stack.client
    recovers = c.submit(long_spec("killed-once", epochs=4))
    doomed = c.submit(long_spec("killed-twice", epochs=200))
    started = time.monotonic()
    for run_id in (recovers["id"], doomed["id"]):
        _kill_job_process(fault_stack, _running_with_points(fault_stack, run_id))
    # The reaper notices the silence, requeues (attempt 2 of 2) and the dispatcher re-sends.
    second = _running_with_points(fault_stack, doomed["id"], attempt=2)
    assert any("reaper:" in line and "requeued" in line for line in second["log_tail"])
    _kill_job_process(fault_stack, second)
    failed = c.wait_terminal(doomed["id"], timeout=RUN_TIMEOUT_S)
    assert failed["status"] == "failed" and failed["attempt"] == 2
    assert "attempt 2 of 2" in failed["error"] and "no heartbeat" in failed["error"]
    done = c.wait_terminal(recovers["id"], timeout=RUN_TIMEOUT_S)
    assert done["status"] == "succeeded" and done["attempt"] == 2, done["error"]
    assert any("attempt 2 of 2" in line for line in done["log_tail"])
    _clean_points(fault_stack, recovers["id"])
    figures.add("runs recovered after SIGKILL (requeued, succeeded)")
    figures.add("runs failed at the attempt cap after SIGKILL")
    # Recovered within the configured time: each loss detected after the heartbeat timeout.
    assert time.monotonic() - started > HEARTBEAT_TIMEOUT_S


def test_redis_restart_loses_queued_messages_and_every_run_still_finishes_once(fault_stack: FaultStack) -> None:
    c = fault_stack.client
    running = [c.submit(long_spec(f"outlives-redis-{i}", epochs=40)) for i in range(2)]
    for r in running:
        _running_with_points(fault_stack, r["id"])
    # Both job processes are busy: these three wait as messages in Redis.
    others = [c.submit(quick_spec(f"queued-{i}")) for i in range(3)]
    assert fault_stack.redis.client().llen("train") == 3
    fault_stack.redis.restart()  # SIGKILL, no persistence: the queued messages are gone
    figures.add("faults injected: Redis killed and restarted (queue lost)")
    assert fault_stack.redis.client().llen("train") == 0
    ids = [r["id"] for r in running + others]
    ends = [c.wait_terminal(i, timeout=RUN_TIMEOUT_S) for i in ids]
    assert [e["status"] for e in ends] == ["succeeded"] * 5, [(e["id"], e["status"], e["error"]) for e in ends]
    assert [e["attempt"] for e in ends] == [1] * 5, "a run was executed twice"
    for i in ids:
        _clean_points(fault_stack, i)
    figures.add("runs recovered after the Redis restart", len(ids))
    assert "re-sent" in fault_stack.api.log.read_text()
