"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from backend.store.db import ping

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """The database and the broker answer."""
    checks: dict[str, str] = {}
    try:
        ping(request.app.state.engine)
        checks["database"] = "ok"
    except Exception as e:  # report, never raise: this is the probe
        checks["database"] = f"error: {type(e).__name__}"
    try:
        checks["broker"] = "ok" if request.app.state.queue.ping() else "error: no pong"
    except Exception as e:
        checks["broker"] = f"error: {type(e).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(checks, status_code=status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE)
