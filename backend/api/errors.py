"""The one place where errors become HTTP: domain errors (`backend.core.errors`) and request
validation, as 4xx responses that name the field, also for rules that span several fields."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from backend.core.errors import Conflict, Invalid, NotFound, OptiboardError, problem_detail
from runspec.spec import SpecError

STATUS_OF: dict[type[OptiboardError], int] = {NotFound: 404, Conflict: 409, Invalid: 422}


def located_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        err = dict(err)
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, SpecError):
            err["loc"] = [*err.get("loc", ()), *cause.field.split(".")]
            err["msg"] = str(cause)
        if "ctx" in err:
            err["ctx"] = {k: str(v) for k, v in err["ctx"].items()}
        err.pop("input", None)  # never echo (possibly huge or hostile) input back
        out.append(err)
    return out


async def validation_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": located_errors(exc.errors())}))


async def domain_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    """NotFound → 404, Conflict → 409, Invalid → 422 with one located entry per problem."""
    assert isinstance(exc, OptiboardError)
    status = next((code for cls, code in STATUS_OF.items() if isinstance(exc, cls)), 400)
    detail: Any = problem_detail(exc.problems, kind=exc.kind, ctx=exc.ctx) if isinstance(exc, Invalid) else exc.message
    return JSONResponse(status_code=status, content={"detail": detail})
