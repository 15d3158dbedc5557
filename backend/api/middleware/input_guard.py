"""Input the database cannot store (NUL, lone surrogates) and JSON no parser should see (too deep,
not UTF-8) answered as 422 naming the field, before any handler runs."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.exc import DataError, StatementError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.middleware import json_body as json_guard
from backend.api.middleware.body_limit import TrackedSend
from backend.core.errors import problem_detail

log = logging.getLogger(__name__)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class InputGuard:
    """Turns input that the database would refuse into a 422 instead of a 500.

    PostgreSQL cannot store NUL characters in text and neither backend can store a lone UTF-16
    surrogate: those are refused in the path, the query string and JSON bodies, with the
    field's location, before any handler runs, so both backends answer the same. A value
    outside a column's range (an id beyond 32 or 64 bits) that still reaches the database is
    refused by the database; that refusal is answered as 422 here, not as a server error.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if json_guard.bad_text(scope["path"]):
            await _unprocessable(send, ["path"], "the path contains a NUL character or invalid Unicode")
            return
        query = scope.get("query_string", b"").decode("latin-1")
        for key, value in parse_qsl(query, keep_blank_values=True):
            why = json_guard.bad_text(key) or json_guard.bad_text(value)
            if why:
                await _unprocessable(send, ["query", key.replace("\x00", "")], why)
                return
        if scope["method"] in _BODY_METHODS and _is_json(scope):
            chunks = []
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            # One check before any parser sees the body (backend.api.middleware.json_body): UTF-8, nesting
            # at most MAX_JSON_DEPTH, no NUL or lone surrogate. It parses only a body whose bytes
            # can hold a NUL or a surrogate (profiled: parse + walk were ~22 % of a metric
            # batch's time), and hands that parse on to the handler.
            try:
                document = json_guard.check_body(body)
            except json_guard.BodyRefused as e:
                await _unprocessable(send, e.loc, e.msg)
                return
            if document is not None:
                scope[json_guard.PARSED] = document
            receive = _replay(body)
        tracked = TrackedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except (OverflowError, DataError, StatementError) as e:
            if tracked.started or (
                isinstance(e, StatementError)
                and not isinstance(e, DataError)
                and not isinstance(e.orig, OverflowError | UnicodeError | ValueError)
            ):
                raise
            log.warning(
                "database refused a request value on %s %s: %s",
                scope["method"],
                scope["path"],
                type(getattr(e, "orig", e)).__name__,
            )
            await _unprocessable(send, ["request"], "a value is out of range for the database")


def _is_json(scope: Scope) -> bool:
    """FastAPI reads a body without a Content-Type as JSON too."""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return b"json" in value.lower()
    return True


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _unprocessable(send: Send, loc: list[Any], msg: str) -> None:
    body = json.dumps({"detail": problem_detail([(tuple(loc), msg)])}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
