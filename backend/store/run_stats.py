"""Aggregates over runs for operations (`GET /metrics`): computed in SQL, no rows fetched."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from backend.store import models as m
from runspec.vocabulary import TERMINAL_STATUSES

# Job wall time, start to end: seconds-long CPU jobs (PTQ, benchmarks) up to day-long training.
DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0)


def _duration_seconds(dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.extract("epoch", m.Run.finished_at - m.Run.started_at)
    # SQLite stores timestamps as text; julianday() parses them.
    return (func.julianday(m.Run.finished_at) - func.julianday(m.Run.started_at)) * 86400.0


def run_duration_histogram(session: Session) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, status) -> {"buckets": [cumulative counts per DURATION_BUCKETS], "sum", "count"}
    over finished runs, computed in one aggregate query (no rows fetched)."""
    duration = _duration_seconds(session.get_bind().dialect.name)
    columns = [
        m.Run.kind,
        m.Run.status,
        func.count(),
        func.coalesce(func.sum(duration), 0.0),
        *(func.sum(case((duration <= bound, 1), else_=0)) for bound in DURATION_BUCKETS),
    ]
    query = (
        select(*columns)
        .where(
            and_(
                m.Run.status.in_(sorted(TERMINAL_STATUSES)),
                m.Run.started_at.is_not(None),
                m.Run.finished_at.is_not(None),
            )
        )
        .group_by(m.Run.kind, m.Run.status)
    )
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, status, count, total, *buckets in session.execute(query).all():
        out[(kind, status)] = {
            "count": int(count),
            "sum": float(total or 0.0),
            "buckets": [int(b or 0) for b in buckets],
        }
    return out
