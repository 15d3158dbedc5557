"""Authentication before any request body is read (issue 15, item 6).

FastAPI reads and parses a route's body (a multipart upload is spooled to disk whole) before it
runs the route's dependencies, `Authenticated` included, and the InputGuard middleware reads
JSON bodies before routing. So without this gate, an unauthenticated 100 MB upload was received,
parsed and spooled before its 401. `AuthBeforeBody` is a raw ASGI middleware that runs the same
check as `deps.current_token` on the request's headers alone, for every request to `/api/…` that
may carry a body, and answers 401 (or 403 for a cross-site cookie write) without ever calling
`receive`: not a byte of the body is read. The verified token is left in the request's state, so
the route's own dependency does not query the database a second time.
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.api.deps import VERIFIED_TOKEN, current_token

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def may_have_body(scope: Scope) -> bool:
    if scope["method"] in BODY_METHODS:
        return True
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


class AuthBeforeBody:
    """401/403 from the headers alone for body-carrying requests under `prefix`."""

    def __init__(self, app: ASGIApp, *, prefix: str = "/api/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix) or not may_have_body(scope):
            await self.app(scope, receive, send)
            return
        try:
            record = await current_token(Request(scope))  # no receive: the body cannot be read
        except HTTPException as e:
            body = json.dumps({"detail": e.detail}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"connection", b"close")]
            headers += [(k.lower().encode(), v.encode()) for k, v in (e.headers or {}).items()]
            await send({"type": "http.response.start", "status": e.status_code, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})[VERIFIED_TOKEN] = record
        await self.app(scope, receive, send)
