"""When each step of a run happened: (step, wall time) anchors for a chart's time axes.

The dashboard plots curves against relative or wall-clock time by interpolating between these
anchors (piecewise linear in the step), so a series' points need not carry their own times: one
key's points, thinned to at most `max_points` evenly spaced by rank, first and last always kept.
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from backend.store import models as m


def read_wall_times(session: Session, *, run_id: int, key: str, max_points: int = 500) -> tuple[list[int], list[float]]:
    """Steps (ascending) and their wall times (seconds since the Unix epoch, float) of `key`'s
    points, at most `max_points` (>= 2) of them; two empty lists when the key has no points.
    Cost: one COUNT and one indexed range scan of the key's points (primary key run, key, step)."""
    n = (
        session.scalar(
            select(func.count())
            .select_from(m.MetricPoint)
            .where(m.MetricPoint.run_id == run_id, m.MetricPoint.key == key)
        )
        or 0
    )
    if n == 0:
        return [], []
    stride = max(1, -(-n // max(2, max_points - 1)))
    rows = session.execute(
        text(
            "SELECT step, wall_time FROM (SELECT step, wall_time, "
            "ROW_NUMBER() OVER (ORDER BY step) AS rn FROM metric_points WHERE run_id = :run AND key = :key) AS t "
            "WHERE (rn - 1) % :stride = 0 OR rn = :n ORDER BY step"
        ),
        {"run": run_id, "key": key, "stride": stride, "n": n},
    ).all()
    return [int(s) for s, _ in rows], [float(w) for _, w in rows]
