"""ASGI middleware of the API: security headers, body limits and the input guard."""

from backend.api.middleware.guards import BodyLimit, InputGuard, SecurityHeaders

__all__ = ["BodyLimit", "InputGuard", "SecurityHeaders"]
