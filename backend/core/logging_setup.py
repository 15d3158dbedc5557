"""Process-wide logging: one JSON object per line for machines, or plain text for people.

The API and every worker call `configure_logging` once at start. A JSON line carries `ts`
(UTC, ISO 8601), `level`, `logger`, `msg`, any `extra={...}` fields given at the call site,
and the fields bound with `log_context(run_id=...)` for the code running inside it; so a
log shipper can filter one run's lines across the API and all workers without parsing text.
"""

from __future__ import annotations

import json as jsonlib
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()) | {
    "message",
    "asctime",
    "taskName",
}

# An immutable default: log_context() always sets a fresh dict, never mutates one in place.
_context: ContextVar[Mapping[str, Any]] = ContextVar("optiboard_log_context", default=MappingProxyType({}))

# Loggers that install handlers of their own; routed to the root handler instead so that
# every line of the process has the same shape.
_ROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task")


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` (e.g. run_id, worker) to every line logged inside the block."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict | list | tuple):
        try:
            jsonlib.dumps(value, allow_nan=True)
            return value
        except (TypeError, ValueError):
            return repr(value)
    return str(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (no embedded newlines, tracebacks included)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _context.get().items():
            entry.setdefault(key, _jsonable(value))
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry.setdefault(key, _jsonable(value))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return jsonlib.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines that still show the context fields (run_id=...)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = dict(_context.get())
        fields.update((k, v) for k, v in record.__dict__.items() if k not in _RECORD_ATTRS and not k.startswith("_"))
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


class _OptiboardHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marker class so a second configure_logging call replaces, not duplicates, it."""


def configure_logging(json: bool, level: str = "INFO") -> None:
    """Send every log line of this process to stderr, as JSON lines if `json` is true.

    Idempotent: calling it again (e.g. in a Celery child after fork) replaces the handler.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _OptiboardHandler):
            root.removeHandler(handler)
    handler = _OptiboardHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
    # Third-party chatter that drowns a worker's own lines at INFO.
    logging.getLogger("tensorflow").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("absl").setLevel(max(logging.WARNING, root.level))


def connect_celery_logging(json: bool, level: str = "INFO") -> None:
    """Keep Celery from installing its own handlers; use `configure_logging` instead.

    Celery skips its logging setup when a receiver is connected to `setup_logging`; call
    this in the worker before the worker starts (e.g. in worker/celery_app.py).
    """
    from celery import signals  # Celery only where a worker runs

    def _setup(**_: Any) -> None:
        configure_logging(json=json, level=level)

    signals.setup_logging.connect(_setup, weak=False)
