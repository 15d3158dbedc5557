"""Issue 15 item 4: the embedded Redis of a real `optiboard up` killed with SIGKILL is restarted
from its append-only file (queued jobs kept) and the terminal says so; if it keeps dying, `up`
stops everything loudly. While a broker is down the API logs one line per outage, not a
traceback per attempt."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis as redis_lib

from backend.store.migrate import upgrade
from tests.conftest import make_token
from tests.reliability import figures
from tests.reliability.redis_server import RedisServer
from tests.stack import Api, cli, free_port, live_child, stack_env, stop, tiny_spec, wait_for

pytestmark = [pytest.mark.services, pytest.mark.tensorflow]  # tier: see tests/conftest.py


def _redis_child(up: psutil.Process) -> psutil.Process | None:
    return live_child(up, lambda c: "redis" in c.name())


def _queued_messages(sock: Path) -> int:
    client = redis_lib.Redis(unix_socket_path=str(sock), socket_timeout=2)
    try:
        return int(client.llen("train"))
    finally:
        client.close()


def test_up_restarts_a_killed_redis_with_its_queue_then_stops_loudly_if_it_keeps_dying(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    # The worker listens on a queue nobody sends to, so the jobs stay in Redis where the test can count them.
    env = stack_env(
        data_dir=data,
        database_url=f"sqlite:///{data / 'optiboard.db'}",
        redis_url="",
        OPTIBOARD_WORKER_QUEUES="nobody-sends-here",
        OPTIBOARD_REAPER_INTERVAL_S="1",
    )
    log = tmp_path / "up.log"
    proc = cli(["up", "--port", str(port)], env, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, timeout=90, what="optiboard up")
        up = psutil.Process(proc.pid)
        http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {(data / 'token').read_text().strip()}"}, timeout=30
        )
        for i in range(2):
            assert http.post("/api/runs", json=tiny_spec(f"queued-{i}")).status_code == 201
        sock = data / "redis.sock"
        wait_for(lambda: _queued_messages(sock) == 2, timeout=20, what="two queued jobs")
        time.sleep(1.5)  # appendfsync everysec: the AOF holds them now

        first = _redis_child(up)
        assert first is not None
        killed_at = time.monotonic()
        lines_before = len(log.read_text(errors="replace").splitlines())
        first.send_signal(signal.SIGKILL)
        second = wait_for(
            lambda: (c := _redis_child(up)) and c.pid != first.pid and c, timeout=15, what="a restarted redis-server"
        )
        wait_for(lambda: _queued_messages(sock) >= 0, timeout=10, what="the restarted Redis to answer")
        back_s = time.monotonic() - killed_at
        assert _queued_messages(sock) == 2, "the append-only file lost the queued jobs"
        assert not psutil.pid_exists(first.pid) or psutil.Process(first.pid).status() != psutil.STATUS_ZOMBIE
        text = wait_for(
            lambda: "is back" in (t := log.read_text(errors="replace")) and t, timeout=10, what="the notice"
        )
        assert f"embedded Redis (pid {first.pid}) exited with signal SIGKILL; restarting it" in text
        # The API reconnects by itself: a new run is stored and its job reaches the new server.
        assert http.post("/api/runs", json=tiny_spec("after-restart")).status_code == 201
        wait_for(lambda: _queued_messages(sock) == 3, timeout=20, what="the new job in the restarted Redis")
        time.sleep(3)
        after = log.read_text(errors="replace").splitlines()[lines_before:]
        assert not any("Traceback" in line for line in after), "\n".join(after)
        figures.add(f"embedded Redis SIGKILLed under optiboard up: back in {back_s:.1f} s, queued jobs kept 2/2")

        # Dying again and again is not something a restart fixes: up stops everything, loudly.
        victim = second
        for _ in range(3):
            victim.send_signal(signal.SIGKILL)
            if _ == 2:
                break
            victim = wait_for(
                lambda v=victim: (c := _redis_child(up)) and c.pid != v.pid and c, timeout=15, what="the next restart"
            )
            # Kill a server that is up, not one still starting (a death while starting is its own
            # case: tests/unit/test_redis_supervisor.py).
            wait_for(lambda: _queued_messages(sock) >= 0, timeout=10, what="the restarted Redis to answer")
        code = proc.wait(timeout=90)
        assert code != 0
        text = log.read_text(errors="replace")
        assert "times in 60 s" in text and "Stopping everything." in text
        assert not up.is_running() or up.status() == psutil.STATUS_ZOMBIE
        http.close()
    finally:
        stop(proc)


def test_a_broker_outage_is_one_log_line_not_a_traceback_per_attempt(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'o.db'}"
    upgrade(db)
    token = make_token(db)
    broker = RedisServer(tmp_path)
    api = Api(
        stack_env(data_dir=tmp_path / "data", database_url=db, redis_url=broker.url, OPTIBOARD_REAPER_INTERVAL_S="0.5"),
        log=tmp_path / "api.log",
    )
    try:
        broker.kill()
        before = len(api.log.read_text().splitlines())
        with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            for i in range(3):
                assert http.post("/api/runs", json=tiny_spec(f"down-{i}")).status_code == 201
        time.sleep(5)  # ~10 dispatcher sweeps, each finding three runs to send
        during = api.log.read_text().splitlines()[before:]
        assert "Traceback" not in "\n".join(during)
        assert len(during) <= 4, "\n".join(during)
        assert any("broker unavailable" in line for line in during)
        figures.add("API log lines during a 5 s broker outage (3 runs, 10 sweeps)", len(during))
        broker.start()
        client = broker.client()
        wait_for(lambda: client.llen("train") == 3, timeout=30, what="the dispatcher to re-send the 3 runs")
        client.close()
        wait_for(lambda: "broker reachable again" in api.log.read_text(), timeout=10, what="the recovery line")
    finally:
        api.stop()
        broker.stop()
