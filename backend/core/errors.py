"""One error vocabulary for the whole backend: domain code raises these, and one handler
(`backend.api.errors`) turns them into HTTP. Nothing outside `backend/api/` imports FastAPI.

In the manner of polar's `PolarError(message, status_code)` and mlflow's `MlflowException` with
its error-code table: the kind of failure is the class, the HTTP status is the API's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# A located problem: the path of the offending field from the request's root (as pydantic
# reports it, e.g. ("body", "techniques", 0, "teacher_run_id")) and a sentence saying why.
Problem = tuple[tuple[Any, ...], str]


class OptiboardError(Exception):
    """Base of every domain error; `message` is shown to the user as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(OptiboardError):
    """The thing named does not exist (HTTP 404)."""


class Conflict(OptiboardError):
    """The request is well formed but the thing is in a state that forbids it (HTTP 409)."""


class Invalid(OptiboardError):
    """The request breaks rules, each located at a field (HTTP 422, one entry per problem).

    `kind` is the machine-readable type of every entry (pydantic's `type`; "value_error" by
    default) and `ctx` optional numbers a client may act on (e.g. {"limit": 1000})."""

    def __init__(
        self, problems: Sequence[Problem], *, kind: str = "value_error", ctx: dict[str, Any] | None = None
    ) -> None:
        if not problems:
            raise ValueError("Invalid needs at least one problem")
        self.problems = list(problems)
        self.kind, self.ctx = kind, ctx
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in self.problems))

    @classmethod
    def at(cls, loc: Sequence[Any], msg: str, **kwargs: Any) -> Invalid:
        """One problem at one field."""
        return cls([(tuple(loc), msg)], **kwargs)


def problem_detail(
    problems: Sequence[Problem], *, kind: str = "value_error", ctx: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The 422 body's `detail`, in FastAPI's own shape, so a client parses every 422 alike."""
    extra = {"ctx": ctx} if ctx else {}
    return [{"loc": list(loc), "msg": msg, "type": kind, **extra} for loc, msg in problems]
