"""Digests: when a run ends, each of its series is packed, per block level, as the points a
compare read returns at that level (reads.block_series over its blocks). A compare page of
100 finished runs then reads 400 rows of bytes instead of ~60,000 block rows — the driver's
per-value work, not the database, was most of that read's time.

A digest is only used while the series' count and first and last steps still match it, so
points written after it was built (a late batch) make the read fall back to the blocks.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, exists, insert, select
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.metrics import reads
from runspec.vocabulary import TERMINAL_STATUSES

# Levels whose series would have more blocks than this are not digested: reads that fine are
# rare (max_points over ~4,000) and their digest would be large. The coarsest level always is,
# so every series with blocks gets a digest and backfill never picks the same run again.
MAX_BLOCKS = 1024


def build(conn: Connection, *, run_id: int) -> int:
    """(Re)build the run's digests from its block summaries; returns how many were written."""
    conn.execute(delete(m.MetricDigest).where(m.MetricDigest.run_id == run_id))
    top = reads.TOP
    spans = reads._rows(conn, reads._LENGTHS_SQL.format(level=top, where=f"run_id = {int(run_id)}"), {})
    written = 0
    for level in reads.LEVELS:
        span_of = {
            str(key): (int(n), int(lo), int(hi))
            for _, key, n, lo, hi in spans
            if level == top or int(hi) // level - int(lo) // level + 1 <= MAX_BLOCKS
        }
        if not span_of:
            continue
        params: dict[str, object] = {}
        where = reads._runs_where([run_id], sorted(span_of), params)
        rows = reads._rows(conn, reads._BLOCKS_SQL.format(level=level, where=where), params)
        values = []
        for _, key, steps, vals in reads.block_series(rows):
            n, lo, hi = span_of[key]
            values.append(
                {
                    "run_id": run_id,
                    "key": key,
                    "level": level,
                    "n": n,
                    "first_step": lo,
                    "last_step": hi,
                    "data": reads.pack(steps, vals),
                }
            )
        if values:
            conn.execute(insert(m.MetricDigest), values)
            written += len(values)
    return written


def backfill(session: Session, *, limit: int = 5) -> list[int]:
    """Digest finished runs that have blocks but no digest (runs from before digests existed, or
    ended by a path that did not build them). Newest first, a few per call."""
    ids = list(
        session.scalars(
            select(m.Run.id)
            .where(
                m.Run.status.in_(TERMINAL_STATUSES),
                ~exists().where(m.MetricDigest.run_id == m.Run.id),
                exists().where(m.MetricBlock.run_id == m.Run.id),
            )
            .order_by(m.Run.id.desc())
            .limit(limit)
        )
    )
    for run_id in ids:
        build(session.connection(), run_id=run_id)
    return ids
