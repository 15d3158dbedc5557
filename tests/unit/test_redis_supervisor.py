"""The embedded-Redis supervisor under `optiboard up`: a server that dies again while it is being
restarted is one more death under the restart policy, not a reason to stop everything at once.

Real child processes stand in for redis-server (a `sleep` that lives, a `true` that exits at
once), so the supervisor sees real exit codes; no Redis is needed."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from cli.embedded import RedisSupervisor


class _FlakyRedis:
    """Starts a process that exits during startup `dies_while_starting` times, then one that lives."""

    def __init__(self, data_dir: Path, dies_while_starting: int) -> None:
        self.dir = data_dir
        self.left = dies_while_starting
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(["sleep", "30"])

    def start(self) -> str:
        self.starts += 1
        if self.left > 0:
            self.left -= 1
            self.proc = subprocess.Popen(["true"])
            self.proc.wait()
            raise RuntimeError("embedded redis-server did not start")
        self.proc = subprocess.Popen(["sleep", "30"])
        return "redis+socket://x"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


def _checks(sup: RedisSupervisor, n: int) -> list[bool]:
    return [sup.check() for _ in range(n)]


def test_a_death_while_restarting_is_counted_and_restarted_again(tmp_path: Path) -> None:
    redis = _FlakyRedis(tmp_path, dies_while_starting=1)
    said: list[str] = []
    sup = RedisSupervisor(redis, echo=said.append, max_restarts=3, window_s=60)  # type: ignore[arg-type]
    try:
        redis.kill()
        assert sup.check() is True  # restart 1: dies while starting
        assert sup.check() is True  # restart 2: lives
        assert redis.starts == 2
        assert redis.proc is not None and redis.proc.poll() is None
        assert any("is back" in line for line in said)
        assert not any("Stopping everything" in line for line in said)
    finally:
        if redis.proc and redis.proc.poll() is None:
            redis.kill()


def test_dying_while_starting_every_time_stops_at_the_policy_limit(tmp_path: Path) -> None:
    redis = _FlakyRedis(tmp_path, dies_while_starting=100)
    said: list[str] = []
    sup = RedisSupervisor(redis, echo=said.append, max_restarts=3, window_s=60)  # type: ignore[arg-type]
    redis.kill()
    results = _checks(sup, 4)
    assert results == [True, True, True, False]
    assert redis.starts == 3
    assert "4 times in 60 s" in said[-1] and "Stopping everything." in said[-1]


def test_a_live_server_is_left_alone(tmp_path: Path) -> None:
    redis = _FlakyRedis(tmp_path, dies_while_starting=0)
    sup = RedisSupervisor(redis, echo=lambda _: None, max_restarts=3, window_s=60)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        assert _checks(sup, 5) == [True] * 5
        assert redis.starts == 0
        assert time.monotonic() - started < 5
    finally:
        redis.kill()
