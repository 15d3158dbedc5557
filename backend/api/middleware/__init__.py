"""ASGI middleware of the API: security headers, body limits, writes authenticated (and refused
cross-site) before their body is read (`writes`), and the input guard, which checks every JSON
body before any parser sees it (`json_body`)."""

from backend.api.middleware.body_limit import BodyLimit
from backend.api.middleware.headers import SecurityHeaders
from backend.api.middleware.input_guard import InputGuard
from backend.api.middleware.writes import WriteGuard

__all__ = ["BodyLimit", "InputGuard", "SecurityHeaders", "WriteGuard"]
