"""Every state-changing request is authenticated, and refused cross-site, before its body is read.

FastAPI reads and parses a request's body before it solves the route's dependencies, so the
`Authenticated` dependency alone lets an anonymous client have its body read, parsed and
validated (and a 422 describe it) before the 401. `WriteGuard` runs in front of the body
reader (backend.api.middleware.InputGuard) and applies to every request that is a write (any
method other than GET, HEAD and OPTIONS) or may carry a body (a Content-Length above zero or a
Transfer-Encoding, whatever the method), on every path (routes added later included):

1. authentication, unless the path is an open write (`OPEN_WRITES`): the token is verified
   (the same hot read as `deps.current_token`, which then reuses the result) and a missing,
   unknown or revoked token gets 401 without a byte of the body read;
2. same origin for browser credentials: a request authenticated by the dashboard's cookie, and
   any request to an open write not carrying a bearer token, must be same-origin (`Origin`,
   else `Referer`, matching `Host`; with neither, `X-Requested-With: optiboard`, which a
   cross-site form cannot send): 403 otherwise. This covers `/login` (the sign-in page posts the
   token it is checking) and `/logout`, which needs no token
   but would clear a signed-in user's cookie from another site's form. A bearer token cannot
   be sent by another site, so it needs no origin check.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.store import tokens

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Writes that need no token (they still refuse cross-site requests).
# /login takes the token it checks in its body (the sign-in page's pasted token).
OPEN_WRITES = frozenset({"/logout", "/login"})
# Where the verified token is left for deps.current_token (one lookup per request).
VERIFIED = "optiboard.verified_token"


def may_carry_body(scope: Scope) -> bool:
    """A write, or any request whose headers announce a body."""
    if scope["method"] not in SAFE_METHODS:
        return True
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


class WriteGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not may_carry_body(scope):
            await self.app(scope, receive, send)
            return
        from backend.api import deps  # deps imports the store and settings; keep this module light

        request = Request(scope)
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        bearer = value.strip() if scheme.lower() == "bearer" and value.strip() else None
        cookie = None if bearer else request.cookies.get(deps.COOKIE)
        settings = scope["app"].state.settings
        if settings.auth_required and scope["path"] not in OPEN_WRITES:
            token = bearer or cookie
            if not token:
                await _answer(send, 401, "authentication required: send 'Authorization: Bearer <token>'")
                return
            record = await tokens.verify_token_hot(scope["app"].state.hot_reads, token=token)
            if record is None:
                await _answer(send, 401, "invalid or revoked token")
                return
            scope[VERIFIED] = record
        elif scope["path"] in OPEN_WRITES and bearer is None:
            cookie = cookie or "open write"  # no token needed, but no other site may send it
        if cookie and not deps.same_origin(request):
            await _answer(send, 403, "cross-origin write refused")
            return
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    # The body was never read: close the connection rather than leave it to be drained.
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
