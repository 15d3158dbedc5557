"""Dashboard pages (static HTML from frontend/) and the token sign-in link."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, RedirectResponse, Response

from backend.api.deps import COOKIE, Id, SessionDep, SettingsDep
from backend.store import tokens

router = APIRouter(include_in_schema=False)

PAGES = {"runs": "index.html", "run": "run.html", "compare": "compare.html",
         "launch": "launch.html", "workers": "workers.html", "docs": "docs.html", "redoc": "redoc.html"}


def _page(settings: SettingsDep, page: str) -> FileResponse:
    path = settings.frontend_dir / PAGES[page]
    if not path.is_file():
        path = settings.frontend_dir / "index.html"
    return FileResponse(path, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/")
def runs_page(settings: SettingsDep) -> FileResponse:
    return _page(settings, "runs")


@router.get("/runs/{run_id}")
def run_page(run_id: Id, settings: SettingsDep) -> FileResponse:
    return _page(settings, "run")


@router.get("/docs")
def api_docs_page(settings: SettingsDep) -> FileResponse:
    """Swagger UI on /openapi.json, from files the API serves itself (no CDN)."""
    return _page(settings, "docs")


@router.get("/redoc")
def api_reference_page(settings: SettingsDep) -> FileResponse:
    return _page(settings, "redoc")


@router.get("/compare")
def compare_page(settings: SettingsDep) -> FileResponse:
    return _page(settings, "compare")


@router.get("/launch")
def launch_page(settings: SettingsDep) -> FileResponse:
    return _page(settings, "launch")


@router.get("/workers")
def workers_page(settings: SettingsDep) -> FileResponse:
    return _page(settings, "workers")


@router.get("/login")
def login(request: Request, session: SessionDep,
          token: Annotated[str, Query(min_length=1, max_length=200)]) -> Response:
    """Exchange a token from the sign-in link for an HttpOnly cookie, then open the dashboard."""
    if tokens.verify_token(session, token=token) is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked token")
    response = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https", max_age=30 * 24 * 3600)
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path="/")
    return response
