"""Issue 15 item 7: slow headers and slow bodies are cut off, and one client cannot hold more
than its share of connections. Real sockets on loopback to the real server; every loop has a
deadline of its own."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.reliability import figures
from tests.security.live import LiveApi, live_api

HEADER_TIMEOUT_S = 2.0
BODY_GRACE_S = 2.0
MIN_RATE = 16 * 1024
PER_CLIENT = 40
SLACK_S = 3.0  # scheduling on a loaded 2-core machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    yield from live_api(
        tmp_path_factory.mktemp("slow"),
        OPTIBOARD_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
        OPTIBOARD_BODY_GRACE_S=str(BODY_GRACE_S),
        OPTIBOARD_BODY_MIN_BYTES_PER_S=str(MIN_RATE),
        OPTIBOARD_MAX_CONNECTIONS_PER_CLIENT=str(PER_CLIENT),
    )


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(False)
    return sock


def _trickle(
    socks: list[socket.socket], first: bytes, drip: bytes, *, seconds: float
) -> dict[int, tuple[float, bytes]]:
    """Send `first` on every socket, then `drip` every 0.25 s on those still open; return, per
    socket index, when the server closed it and what it answered. Stops after `seconds`."""
    start = time.monotonic()
    for s in socks:
        s.sendall(first)
    closed: dict[int, tuple[float, bytes]] = {}
    answers: dict[int, bytes] = {i: b"" for i in range(len(socks))}
    next_drip = start + 0.25
    while len(closed) < len(socks) and time.monotonic() - start < seconds:
        open_ = [s for i, s in enumerate(socks) if i not in closed]
        readable, _, _ = select.select(open_, [], [], 0.05)
        for s in readable:
            i = socks.index(s)
            try:
                data = s.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if data:
                answers[i] += data
            else:
                closed[i] = (time.monotonic() - start, answers[i])
        if time.monotonic() >= next_drip:
            next_drip += 0.25
            for i, s in enumerate(socks):
                if i not in closed:
                    try:
                        s.send(drip)
                    except OSError:
                        closed[i] = (time.monotonic() - start, answers[i])
    for s in socks:
        s.close()
    return closed


def test_slow_headers_are_cut_off(server: LiveApi) -> None:
    n = 30
    socks = [_connect(server.api.port) for _ in range(n)]
    closed = _trickle(
        socks, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-a: b\r\n", seconds=HEADER_TIMEOUT_S + SLACK_S + 2
    )
    assert len(closed) == n, f"{n - len(closed)} slow-header connections still open"
    held = max(t for t, _ in closed.values())
    assert held <= HEADER_TIMEOUT_S + SLACK_S
    assert all(a.startswith(b"HTTP/1.1 408") for _, a in closed.values())
    figures.add("slow-header connections closed (408)", n)


def test_slow_bodies_are_cut_off_and_a_steady_body_is_not(server: LiveApi) -> None:
    n = 10
    head = (
        f"POST /api/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    ).encode()
    socks = [_connect(server.api.port) for _ in range(n)]
    closed = _trickle(socks, head, b" ", seconds=BODY_GRACE_S + SLACK_S + 3)
    assert len(closed) == n, f"{n - len(closed)} slow-body connections still open"
    assert max(t for t, _ in closed.values()) <= BODY_GRACE_S + SLACK_S + 1
    figures.add("slow-body connections closed", n)
    # A body that arrives steadily above the minimum rate is served, however long it takes.
    run = httpx.post(f"{server.url}/api/runs", json={"name": "steady", "external": True}, headers=server.auth).json()
    points = [{"key": "loss", "step": i, "value": 0.5, "wall_time": 1.7e9} for i in range(1300)]
    body = json.dumps({"points": points}).encode()
    assert len(body) / (2 * MIN_RATE) > BODY_GRACE_S  # it takes longer than the grace

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 8 * 1024):
            time.sleep(0.25)  # 32 KiB/s, twice the minimum, for ~2 s (beyond the grace)
            yield body[i : i + 8 * 1024]

    r = httpx.post(
        f"{server.url}/api/runs/{run['id']}/metrics",
        content=chunks(),
        timeout=30,
        headers={**server.auth, "content-type": "application/json", "content-length": str(len(body))},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1300, r.text
    assert "Traceback" not in server.log_text()


def test_one_client_holds_a_bounded_number_of_connections(server: LiveApi) -> None:
    extra = 10
    socks = [_connect(server.api.port) for _ in range(PER_CLIENT + extra)]
    start = time.monotonic()
    refused = 0
    for s in socks[PER_CLIENT:]:
        s.setblocking(True)
        s.settimeout(5)
        answer = s.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:100]
        refused += 1
    assert time.monotonic() - start < SLACK_S  # refused at once, not after a timeout
    # The ones held open idle are closed by the header deadline; then the client is served again.
    closed = _trickle(socks[:PER_CLIENT], b"", b"", seconds=HEADER_TIMEOUT_S + SLACK_S + 2)
    assert len(closed) == PER_CLIENT
    for s in socks:
        s.close()
    time.sleep(0.2)
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    figures.add("connections over the per-client bound refused (503)", refused)
