"""The HTTP server's own limits on slow and numerous connections (uvicorn, httptools protocol).

uvicorn closes an idle keep-alive connection (`timeout_keep_alive`) but has no limit on how long
a request's headers or body may take to arrive, nor on how many connections one client holds:
a client sending a header line every few seconds ("slowloris") or a body a byte at a time keeps
its connection, and its memory, forever. Those limits live below ASGI (an ASGI middleware only
runs once the headers are complete), so they are a subclass of uvicorn's protocol:

- headers: a request's headers must be complete `header_timeout_s` after its first byte (or
  after the connection opened); otherwise 408 and the connection is closed;
- body: it may take at most `body_grace_s` plus its bytes so far at `body_min_bytes_per_s`
  (a 512 MiB upload at 64 KiB/s is allowed 30 s + 2.3 h; a body trickled a byte a second is
  cut after ~30 s); otherwise 408 (or, once the app answered, a plain close);
- connections: one client address holds at most `max_connections_per_client` at once; the next
  one gets 503 with `Connection: close` straight away.

The figures are settings (OPTIBOARD_HEADER_TIMEOUT_S, OPTIBOARD_BODY_GRACE_S,
OPTIBOARD_BODY_MIN_BYTES_PER_S, OPTIBOARD_MAX_CONNECTIONS_PER_CLIENT); the defaults follow
nginx's `client_header_timeout`/`client_body_timeout` (60 s) scaled down for an API whose
requests are small, and Apache mod_reqtimeout's `header=20-40,MinRate=500 body=20,MinRate=500`.
Behind a reverse proxy every client has the proxy's address: raise the per-client bound there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from backend.core.settings import Settings

log = logging.getLogger(__name__)


class _Limits:
    header_timeout_s = 10.0
    body_grace_s = 30.0
    body_min_bytes_per_s = 64 * 1024
    max_connections_per_client = 64


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body deadlines and a per-client connection bound
    (class attributes of the subclass `guarded_protocol` makes)."""

    limits: type[_Limits] = _Limits
    open_per_client: Counter[str] = Counter()  # per server process (one event loop)
    _last_log = 0.0
    _closed_since_log = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._body_started = 0.0
        self._body_bytes = 0
        self._reading_body = False
        self._host = self.client[0] if self.client else ""
        self.open_per_client[self._host] += 1
        if self.open_per_client[self._host] > self.limits.max_connections_per_client:
            self._refuse(503, b"Service Unavailable", "too many connections from this client")
            return
        self._arm(self.limits.header_timeout_s, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        left = self.open_per_client[self._host] - 1
        if left > 0:
            self.open_per_client[self._host] = left
        else:
            self.open_per_client.pop(self._host, None)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.limits.header_timeout_s, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        self._body_started = time.monotonic()
        self._body_bytes = 0
        self._reading_body = True
        self._arm(self.limits.body_grace_s, self._check_body_rate)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._reading_body = False
        self._disarm()
        super().on_message_complete()

    # --- deadlines ------------------------------------------------------------------------

    def _arm(self, delay_s: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay_s, callback)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        self._refuse(408, b"Request Timeout", "request headers not complete in time")

    def _check_body_rate(self) -> None:
        self._deadline = None
        if not self._reading_body:
            return
        allowed_s = self.limits.body_grace_s + self._body_bytes / self.limits.body_min_bytes_per_s
        elapsed_s = time.monotonic() - self._body_started
        if elapsed_s < allowed_s:
            self._arm(allowed_s - elapsed_s, self._check_body_rate)
            return
        self._refuse(408, b"Request Timeout", "request body too slow")

    def _refuse(self, status: int, reason: bytes, why: str) -> None:
        """Answer `status` unless a response already started, then close the connection."""
        cls = type(self)
        cls._closed_since_log += 1
        now = time.monotonic()
        if now - cls._last_log >= 10:  # one line per 10 s, however many connections
            log.warning(
                "closed %d connection(s) in the last %.0f s (last: %s, %s, from %s)",
                cls._closed_since_log,
                now - cls._last_log if cls._last_log else 0,
                status,
                why,
                self._host,
            )
            cls._last_log, cls._closed_since_log = now, 0
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if not answering or not self.cycle.response_started:
            body = why.encode()
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, reason, len(body), body)
            )
        # The app, if it is still reading the body, receives http.disconnect (uvicorn marks the
        # cycle disconnected when the connection is lost) and whatever it sends is dropped.
        self.transport.close()


def guarded_protocol(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for `uvicorn.run(http=...)`, with the settings' limits."""
    limits = type(
        "Limits",
        (_Limits,),
        {
            "header_timeout_s": settings.header_timeout_s,
            "body_grace_s": settings.body_grace_s,
            "body_min_bytes_per_s": settings.body_min_bytes_per_s,
            "max_connections_per_client": settings.max_connections_per_client,
        },
    )
    return type(
        "GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits, "open_per_client": Counter()}
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for uvicorn.run that bound slow and numerous connections."""
    return {"http": guarded_protocol(settings), "timeout_keep_alive": settings.keep_alive_timeout_s}
