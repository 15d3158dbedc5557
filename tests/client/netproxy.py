"""A tiny HTTP/1.1 proxy on a real TCP port that tests control, to make real network failures
between the client and the API: refuse a request (the connection is reset before anything
reaches the server), or drop a reply (the server processed the request, the client never
hears back). Each request is parsed (headers + Content-Length body) and forwarded on its own
upstream connection; the policy decides per request."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

PASS, RESET, DROP_REPLY = "pass", "reset", "drop_reply"


def _read_message(sock: socket.socket, buf: bytearray) -> bytes | None:
    """One HTTP message (headers and a Content-Length body) from sock; None at EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf.extend(chunk)
    head_end = buf.index(b"\r\n\r\n") + 4
    length = 0
    for line in bytes(buf[:head_end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(buf) < head_end + length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf.extend(chunk)
    message = bytes(buf[: head_end + length])
    del buf[: head_end + length]
    return message


def _reset(sock: socket.socket) -> None:
    # SO_LINGER 0: close() sends RST, the client sees "connection reset"
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Proxy:
    """`policy(method, path)` → PASS, RESET or DROP_REPLY for each request; `log` records
    (method, path, action)."""

    def __init__(self, upstream: str, policy: Callable[[str, str], str] | None = None) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.policy = policy or (lambda method, path: PASS)
        self.log: list[tuple[str, str, str]] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray()
        try:
            while True:
                request = _read_message(conn, buf)
                if request is None:
                    conn.close()
                    return
                method, path = request.split(b" ", 2)[:2]
                action = self.policy(method.decode(), path.decode())
                self.log.append((method.decode(), path.decode(), action))
                if action == RESET:
                    _reset(conn)
                    return
                with socket.create_connection(self.upstream, timeout=60) as up:
                    up.sendall(request)
                    reply = _read_message(up, bytearray())
                if reply is None or action == DROP_REPLY:
                    _reset(conn)
                    return
                conn.sendall(reply)
        except OSError:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._server.close()
