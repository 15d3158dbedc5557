"""Metric points: one write path (log_batch, idempotent per (run, key, step)) and one read path
(read_series, downsampled in SQL keeping each bucket's first, last, minimum and maximum)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.records import Series

# SQLite accepts at most 32766 bound parameters per statement; 5 per row.
_CHUNK = 5000


@dataclass(frozen=True)
class Point:
    key: str
    step: int
    value: float
    wall_time: float | None = None


def _stored(value: float) -> float | None:
    # NaN is kept as NULL: SQLite has no NaN. ±inf is stored as is on both backends.
    return None if math.isnan(value) else value


def log_batch(session: Session, *, run_id: int, points: Iterable[Point]) -> int:
    """Insert points; a point whose (run, key, step) exists is ignored (first write wins), so a
    retried batch never duplicates. Returns how many points were offered."""
    now = time.time()
    rows = [
        {"run_id": run_id, "key": p.key, "step": p.step, "value": _stored(p.value),
         "wall_time": p.wall_time if p.wall_time is not None else now}
        for p in points
    ]
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for i in range(0, len(rows), _CHUNK):
        stmt = insert(m.MetricPoint).on_conflict_do_nothing(index_elements=["run_id", "key", "step"])
        session.execute(stmt, rows[i : i + _CHUNK])
    return len(rows)


_SERIES_SQL = """
WITH s AS (
  SELECT key, step, value,
         MIN(step) OVER (PARTITION BY key) AS lo,
         MAX(step) OVER (PARTITION BY key) AS hi,
         COUNT(*) OVER (PARTITION BY key) AS n
  FROM metric_points
  WHERE run_id = :run_id AND step > :after {key_filter}
), b AS (
  SELECT key, step, value,
         CASE WHEN n <= :max_points THEN step
              ELSE ((step - lo) * :buckets) / (hi - lo + 1) END AS bucket
  FROM s
), r AS (
  SELECT key, step, value,
         ROW_NUMBER() OVER (PARTITION BY key, bucket ORDER BY value ASC NULLS FIRST, step) AS rmin,
         ROW_NUMBER() OVER (PARTITION BY key, bucket ORDER BY value DESC NULLS LAST, step) AS rmax,
         ROW_NUMBER() OVER (PARTITION BY key, bucket ORDER BY step) AS rfirst,
         ROW_NUMBER() OVER (PARTITION BY key, bucket ORDER BY step DESC) AS rlast
  FROM b
)
SELECT key, step, value FROM r
WHERE rmin = 1 OR rmax = 1 OR rfirst = 1 OR rlast = 1
ORDER BY key, step
"""


def read_series(
    session: Session, *, run_id: int, after_step: int = -1, keys: Sequence[str] | None = None,
    max_points: int = 1000,
) -> dict[str, Series]:
    """Points after the cursor. A key with more than max_points is cut into max_points/4 step
    buckets, each kept as its first, last, minimum and maximum point, so spikes stay visible."""
    max_points = max(4, max_points)
    sql = _SERIES_SQL.format(key_filter="AND key IN :keys" if keys else "")
    stmt = text(sql)
    params: dict[str, object] = {
        "run_id": run_id, "after": after_step, "max_points": max_points,
        "buckets": max(1, max_points // 4),
    }
    if keys:
        stmt = stmt.bindparams(bindparam("keys", expanding=True))
        params["keys"] = list(keys)
    out: dict[str, Series] = {}
    for key, step, value in session.execute(stmt, params):
        series = out.setdefault(key, Series())
        series.steps.append(int(step))
        series.values.append(math.nan if value is None else float(value))
    return out


def last_step(session: Session, *, run_id: int) -> int:
    return session.scalar(select(func.max(m.MetricPoint.step)).where(m.MetricPoint.run_id == run_id)) or -1


def count_points(session: Session, *, run_id: int | None = None) -> int:
    q = select(func.count(m.MetricPoint.id))
    if run_id is not None:
        q = q.where(m.MetricPoint.run_id == run_id)
    return session.scalar(q) or 0


def metric_keys(session: Session, *, run_id: int) -> list[str]:
    return list(session.scalars(
        select(m.MetricPoint.key).where(m.MetricPoint.run_id == run_id).distinct().order_by(m.MetricPoint.key)
    ))
