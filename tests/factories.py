"""Small factories for store tests: a row with sensible defaults, any field overridden.

run = make_run(session, external=True)
make_points(session, run.id, "loss", steps=range(100))
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backend.store import runs
from backend.store.records import RunRecord
from runspec.spec import RunSpec


def make_run(session: Session, *, max_attempts: int = 2, **spec: Any) -> RunRecord:
    """A queued run (flushed, not committed) whose spec is RunSpec's defaults with `spec` applied
    (name "r" and experiment "tests" unless given)."""
    spec = {"name": "r", "experiment": "tests", **spec}
    return runs.create_run(session, spec=RunSpec.model_validate(spec), max_attempts=max_attempts)
