"""Small factories for store tests: a row with sensible defaults, any field overridden.

run = make_run(session, external=True)
make_points(session, run.id, "loss", steps=range(100))
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backend.store import runs, variants
from backend.store.records import RunRecord
from runspec.spec import RunSpec


def make_run(session: Session, *, max_attempts: int = 2, **spec: Any) -> RunRecord:
    """A queued run (flushed, not committed) whose spec is RunSpec's defaults with `spec` applied
    (name "r" and experiment "tests" unless given)."""
    spec = {"name": "r", "experiment": "tests", **spec}
    return runs.create_run(session, spec=RunSpec.model_validate(spec), max_attempts=max_attempts)


def make_variant(
    session: Session, run_id: int, fmt: str, *, accuracy: float | None, size_bytes: int, **fields: Any
) -> None:
    """A measured variant of `fmt` (accuracy also as precision/recall/F1, gzip size = size,
    p50 = size / 1000 ms); any other column given in `fields` overrides the defaults."""
    values: dict[str, Any] = dict(
        format=fmt,
        artifact_path=f"runs/{run_id}/{fmt}",
        accuracy=accuracy,
        precision=accuracy,
        recall=accuracy,
        f1=accuracy,
        confusion=[],
        size_bytes=size_bytes,
        gzip_bytes=size_bytes,
        params=1,
        nonzero_params=1,
        latency_p50_ms=size_bytes / 1000,
        latency_p95_ms=None,
        throughput_per_s=None,
        hardware={},
        extra={},
    )
    variants.add_variant(session, run_id=run_id, fields={**values, **fields})
