"""The client's one error type."""

from __future__ import annotations

from typing import Any


class OptiboardError(Exception):
    """Anything that went wrong talking to an optiboard server: a refused request (status and the
    server's `detail` attached), a network failure (status None) or a wait that timed out."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
