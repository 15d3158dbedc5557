"""422 responses that name the field, also for rules that span several fields."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from runspec.spec import SpecError


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
