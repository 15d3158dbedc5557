"""Dependencies, one alias per concern: SessionDep, SettingsDep, QueueDep, CurrentToken."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Path, Request, status
from sqlalchemy.orm import Session

from backend.api.middleware import writes as write_guard
from backend.core.settings import Settings
from backend.dispatch.queue import JobQueue
from backend.store import tokens
from backend.store.db import unit_of_work
from backend.store.hot_reads import HotReads
from backend.store.records import TokenRecord
from runspec.vocabulary import MAX_ID

COOKIE = "optiboard_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Ids are 32-bit on PostgreSQL (INTEGER): a larger one can name nothing, and must not reach SQL.


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` in the threadpool,
# a hop that costs more than the work.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """The request's unit of work: committed once after the handler, rolled back on error."""
    with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


async def get_queue(request: Request) -> JobQueue:
    return request.app.state.queue


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": the unit of work commits before the response is sent. FastAPI's default
# ("request") runs the code after `yield` once the response has gone out, so a client could
# read its own write before it was committed (39 of 200 finish-then-read pairs saw the old
# status) and a failed commit would follow a 2xx the client had already acted on.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
QueueDep = Annotated[JobQueue, Depends(get_queue)]


def same_origin(request: Request) -> bool:
    """Whether a browser request comes from our own pages (see backend.api.middleware.writes)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin:
        parts = urlsplit(origin)
        return parts.netloc == request.headers.get("host", "")
    # No Origin/Referer (non-browser client or privacy settings): our own pages always send
    # this header, which a cross-site form cannot.
    return request.headers.get("x-requested-with") == "optiboard"


def get_hot_reads(request: Request) -> HotReads:
    return request.app.state.hot_reads


async def current_token(request: Request) -> TokenRecord | None:
    """Bearer token, or the dashboard's HttpOnly cookie (writes through it must be same-origin).

    Checked against the database on every request (a revoked token stops working at once), by
    one indexed SELECT on the event loop's own connection (backend.store.hot_reads)."""
    verified = request.scope.get(write_guard.VERIFIED)
    if verified is not None:  # a write: WriteGuard verified it before the body was read
        return verified
    presented = presented_token(request)
    if presented is None:
        return None
    token, from_cookie = presented
    return accepted_token(request, await tokens.verify_token_hot(get_hot_reads(request), token=token), from_cookie)


def presented_token(request: Request) -> tuple[str, bool] | None:
    """The request's token and whether it came from the cookie; None when the API runs without
    authentication; 401 when the request carries none."""
    if not request.app.state.settings.auth_required:  # read here: one dependency less per request
        return None
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip(), False
    if request.cookies.get(COOKIE):
        return request.cookies[COOKIE], True
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "authentication required: send 'Authorization: Bearer <token>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


def accepted_token(request: Request, record: TokenRecord | None, from_cookie: bool) -> TokenRecord:
    """The verified token (tokens.verify_token_hot's result), or 401/403."""
    if record is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"}
        )
    if from_cookie and request.method not in SAFE_METHODS and not same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin write refused")
    return record


Id = Annotated[int, Path(ge=1, le=MAX_ID)]
CurrentToken = Annotated[TokenRecord | None, Depends(current_token)]
Authenticated = [Depends(current_token)]
