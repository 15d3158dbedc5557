"""Dashboard pages (static HTML from frontend/) and the token sign-in link."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from backend.api.deps import COOKIE, Id, SessionDep, SettingsDep
from backend.store import tokens

router = APIRouter(include_in_schema=False)

PAGES = {
    "runs": "index.html",
    "run": "run.html",
    "compare": "compare.html",
    "launch": "launch.html",
    "workers": "workers.html",
    "study": "study.html",
    "models": "models.html",
    "docs": "docs.html",
    "redoc": "redoc.html",
    "login": "login.html",
}


def _page(settings: SettingsDep, page: str, status_code: int = 200) -> FileResponse:
    path = settings.frontend_dir / PAGES[page]
    if not path.is_file():
        path = settings.frontend_dir / "index.html"
    return FileResponse(path, media_type="text/html", headers={"Cache-Control": "no-cache"}, status_code=status_code)


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


@router.get("/models")
def models_page(settings: SettingsDep) -> FileResponse:
    return _page(settings, "models")


@router.get("/studies")
def studies_page(settings: SettingsDep) -> FileResponse:
    return _page(settings, "study")


@router.get("/studies/{study_id}")
def study_page(study_id: Id, settings: SettingsDep) -> FileResponse:
    return _page(settings, "study")


@router.get("/workers")
def workers_page(settings: SettingsDep) -> FileResponse:
    return _page(settings, "workers")


def _sign_in(request: Request, token: str, target: str) -> Response:
    response: Response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    _set_cookie(request, response, token)
    return response


def _set_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.url.scheme == "https",
        max_age=30 * 24 * 3600,
    )


def _local_path(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never '//host' or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    next_: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
) -> Response:
    """The sign-in link (`?token=…`): exchange the token for an HttpOnly cookie and open the
    dashboard. Without a token, the sign-in page; with a refused one, the same page with 401."""
    if token is None:
        return _page(settings, "login")
    if tokens.verify_token(session, token=token) is None:
        return _page(settings, "login", status.HTTP_401_UNAUTHORIZED)
    return _sign_in(request, token, _local_path(next_))


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)


@router.post("/login")
def login_form(body: SignIn, request: Request, session: SessionDep) -> Response:
    """The sign-in page's pasted token: 204 with the cookie set, 401 when refused. Only from our
    own page (the X-Requested-With header a cross-site form cannot send)."""
    if request.headers.get("x-requested-with") != "optiboard":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "sign in from the optiboard sign-in page")
    if tokens.verify_token(session, token=body.token.strip()) is None:
        return JSONResponse({"detail": "invalid or revoked token"}, status_code=status.HTTP_401_UNAUTHORIZED)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    _set_cookie(request, response, body.token.strip())
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path="/")
    return response
