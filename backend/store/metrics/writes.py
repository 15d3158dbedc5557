"""Metric points: one write path (log_batch, idempotent per (run, key, step)) and one read path
(read_series / read_series_many, downsampled in SQL keeping each bucket's first, last, minimum and
maximum point, so spikes and NaNs stay visible).

Writes go to `metric_points` in bulk (executemany on SQLite, COPY into a temporary table then
INSERT ... SELECT ... ON CONFLICT DO NOTHING on PostgreSQL) and refresh the `metric_blocks`
summaries of the step ranges they touched. Reads of long series take those summaries instead of
the points: a compare page of 100 runs x 4 metrics x 10,000 steps reads ~60 thousand block rows
instead of 4 million points.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.db import driver_marks
from backend.store.metrics import blocks, keyset, reads
from backend.store.records import Series

# Block widths in steps, finest first; each level is summarised from the one below it.
LEVELS = reads.LEVELS
# read_series (one run's page) buckets a series of up to this many times max_points exactly from
# its points (max_points/4 buckets); a longer one comes from the block summaries (a quarter to
# all of that resolution, at a fraction of the cost).
RAW_DOWNSAMPLE_FACTOR = 4
# Below this many rows a PostgreSQL COPY round trip costs more than a pipelined executemany.
_COPY_MIN_ROWS = 200


class Point(NamedTuple):
    """One metric value (a tuple: batches of 10^4 are built and unpacked per request)."""

    key: str
    step: int
    value: float
    wall_time: float | None = None


# --- write ------------------------------------------------------------------------------------


def log_batch(
    session: Session,
    *,
    run_id: int,
    points: Iterable[tuple[str, int, float, float | None]],
    max_keys: int | None = None,
) -> int:
    """Insert points (Point or plain tuples in its field order); a point whose (run, key, step)
    is already stored, or repeated earlier in the same batch, is ignored (first write wins), so
    a retried batch never duplicates. Returns how many points were stored (new (key, step)
    pairs); the points offered minus that number are the ignored repeats.

    With `max_keys`, a batch that would take the run past that many distinct keys raises
    keyset.TooManyMetricKeys before anything is written."""
    now = time.time()
    rows: list[tuple[int, str, int, float | None, float]] = []
    seen: set[tuple[str, int]] = set()
    spans: dict[str, list[int]] = {}
    for key, step, value, wall_time in points:
        ks = (key, step)
        if ks in seen:  # first write wins inside a batch too
            continue
        seen.add(ks)
        # NaN is stored as NULL (SQLite has no NaN); ±inf is stored as is on both backends.
        rows.append((run_id, key, step, None if value != value else value, wall_time if wall_time is not None else now))
        span = spans.get(key)
        if span is None:
            spans[key] = [step, step]
        elif step < span[0]:
            span[0] = step
        elif step > span[1]:
            span[1] = step
    if not rows:
        return 0
    conn = session.connection()
    if max_keys is not None and len(spans) > max_keys:  # before binding that many keys
        keyset.check_new_keys(conn, run_id=run_id, batch_keys=len(spans), new_keys=len(spans), max_keys=max_keys)
    # The stored tails (read before the insert, which does not touch blocks) also say which keys
    # are new: a stored series always has blocks.
    tail = blocks.tails(conn, run_id=run_id, keys=list(spans))
    ends = blocks.ends_of(tail)
    if max_keys is not None:
        keyset.check_new_keys(
            conn,
            run_id=run_id,
            batch_keys=len(spans),
            new_keys=sum(1 for k in spans if k not in ends),
            max_keys=max_keys,
        )
    if conn.dialect.name == "postgresql":
        stored = _insert_postgresql(conn, rows)
    else:
        stored = _insert_generic(conn, rows)
    appended: dict[str, list[tuple[int, float | None]]] = {}
    for key, (lo, hi) in spans.items():
        end = ends.get(key)
        if end is None or lo > end:
            appended[key] = []
        else:  # out of order or overlapping: summarise again from what is stored
            _refresh_blocks(conn, run_id=run_id, key=key, lo=lo, hi=hi)
    if appended:
        # The usual case, a training loop logging forward: every point of the batch was new,
        # so its summaries are computed here from the batch instead of re-read.
        for _, key, step, row_value, _ in rows:
            if key in appended:
                appended[key].append((step, row_value))
        blocks.append(conn, run_id=run_id, batches=appended, tail=tail)
    return stored


def claim_batch_key(session: Session, *, run_id: int, batch_key: str) -> tuple[int, int] | None:
    """Remember a metric batch's idempotency key for the run. Returns None when the key is new
    (the caller stores the batch, then `record_batch_key`), else the (accepted, duplicates) the
    first delivery was answered with. The insert takes the row's lock, so of two concurrent
    deliveries of one batch the second waits for the first to commit and then sees its key."""
    conn = session.connection()
    inserted = conn.execute(_CLAIM_KEY, {"run_id": run_id, "batch_key": batch_key, "now": m.utcnow()}).rowcount
    if inserted:
        return None
    row = conn.execute(
        select(m.MetricBatch.accepted, m.MetricBatch.duplicates).where(
            m.MetricBatch.run_id == run_id, m.MetricBatch.batch_key == batch_key
        )
    ).one()
    return int(row[0]), int(row[1])


def record_batch_key(session: Session, *, run_id: int, batch_key: str, accepted: int, duplicates: int) -> None:
    """The counts a batch claimed with `claim_batch_key` was answered with."""
    session.connection().execute(
        update(m.MetricBatch)
        .where(m.MetricBatch.run_id == run_id, m.MetricBatch.batch_key == batch_key)
        .values(accepted=accepted, duplicates=duplicates)
    )


_CLAIM_KEY = text(
    "INSERT INTO metric_batches (run_id, batch_key, accepted, duplicates, created_at) "
    "VALUES (:run_id, :batch_key, -1, -1, :now) ON CONFLICT (run_id, batch_key) DO NOTHING"
).bindparams(bindparam("now", type_=m.UTCDateTime()))


_INSERT = (
    "INSERT INTO metric_points (run_id, key, step, value, wall_time) VALUES ({ph}) "
    "ON CONFLICT (run_id, key, step) DO NOTHING"
)


def _insert_generic(conn: Connection, rows: list[tuple[int, str, int, float | None, float]]) -> int:
    # One executemany of positional tuples: no per-row dict or ORM work. The drivers sum the
    # rows each INSERT changed (0 for a conflict), so rowcount is the number stored.
    result = conn.exec_driver_sql(_INSERT.format(ph=driver_marks(conn.dialect, 5)), rows)  # type: ignore[arg-type]
    return int(result.rowcount)


def _insert_postgresql(conn: Connection, rows: list[tuple[int, str, int, float | None, float]]) -> int:
    if len(rows) < _COPY_MIN_ROWS:
        return _insert_generic(conn, rows)
    raw = conn.connection.driver_connection  # psycopg 3, inside the session's transaction
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS metric_points_in (run_id integer, key text, "
            "step bigint, value double precision, wall_time double precision) ON COMMIT DELETE ROWS"
        )
        with cur.copy("COPY metric_points_in (run_id, key, step, value, wall_time) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "text", "int8", "float8", "float8"])
            for row in rows:
                copy.write_row(row)
        cur.execute(
            "INSERT INTO metric_points (run_id, key, step, value, wall_time) "
            "SELECT run_id, key, step, value, wall_time FROM metric_points_in "
            "ON CONFLICT (run_id, key, step) DO NOTHING"
        )
        stored = int(cur.rowcount)
        # Emptied now, not only at commit: a unit of work may log several batches.
        cur.execute("DELETE FROM metric_points_in")
    return stored


_BLOCK_COLUMNS = "n, first_step, first_value, last_step, last_value, min_step, min_value, max_step, max_value"
_UPSERT_TAIL = " ON CONFLICT (run_id, key, level, block) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in _BLOCK_COLUMNS.split(", ")
)
_PIVOT = """MAX(CASE WHEN rf = 1 THEN {fs} END), MAX(CASE WHEN rf = 1 THEN {fv} END),
  MAX(CASE WHEN rl = 1 THEN {ls} END), MAX(CASE WHEN rl = 1 THEN {lv} END),
  MAX(CASE WHEN rmin = 1 THEN {ns} END), MAX(CASE WHEN rmin = 1 THEN {nv} END),
  MAX(CASE WHEN rmax = 1 THEN {xs} END), MAX(CASE WHEN rmax = 1 THEN {xv} END)"""

# The finest level, from the points themselves.
_BLOCKS_FROM_POINTS = (
    f"""
INSERT INTO metric_blocks (run_id, key, level, block, {_BLOCK_COLUMNS})
SELECT :run_id, :key, {{level}}, b, COUNT(*),
  {_PIVOT.format(fs="step", fv="value", ls="step", lv="value", ns="step", nv="value", xs="step", xv="value")}
FROM (
  SELECT step / {{level}} AS b, step, value,
    ROW_NUMBER() OVER (PARTITION BY step / {{level}} ORDER BY step) AS rf,
    ROW_NUMBER() OVER (PARTITION BY step / {{level}} ORDER BY step DESC) AS rl,
    ROW_NUMBER() OVER (PARTITION BY step / {{level}} ORDER BY value ASC NULLS FIRST, step) AS rmin,
    ROW_NUMBER() OVER (PARTITION BY step / {{level}} ORDER BY value DESC NULLS LAST, step) AS rmax
  FROM metric_points
  WHERE run_id = :run_id AND key = :key AND step >= :lo AND step < :hi
) AS t WHERE true GROUP BY b"""
    + _UPSERT_TAIL
)

# A coarser level, from the blocks of the level below (ratio children per parent).
_BLOCKS_FROM_BLOCKS = (
    f"""
INSERT INTO metric_blocks (run_id, key, level, block, {_BLOCK_COLUMNS})
SELECT :run_id, :key, {{level}}, b, SUM(n),
  {
        _PIVOT.format(
            fs="first_step",
            fv="first_value",
            ls="last_step",
            lv="last_value",
            ns="min_step",
            nv="min_value",
            xs="max_step",
            xv="max_value",
        )
    }
FROM (
  SELECT block / {{ratio}} AS b, n, first_step, first_value, last_step, last_value,
    min_step, min_value, max_step, max_value,
    ROW_NUMBER() OVER (PARTITION BY block / {{ratio}} ORDER BY block) AS rf,
    ROW_NUMBER() OVER (PARTITION BY block / {{ratio}} ORDER BY block DESC) AS rl,
    ROW_NUMBER() OVER (PARTITION BY block / {{ratio}} ORDER BY min_value ASC NULLS FIRST, min_step) AS rmin,
    ROW_NUMBER() OVER (PARTITION BY block / {{ratio}} ORDER BY max_value DESC NULLS LAST, max_step) AS rmax
  FROM metric_blocks
  WHERE run_id = :run_id AND key = :key AND level = {{child}} AND block >= :lo AND block < :hi
) AS t WHERE true GROUP BY b"""
    + _UPSERT_TAIL
)

_FROM_POINTS = {lv: text(_BLOCKS_FROM_POINTS.format(level=lv)) for lv in LEVELS[:1]}
_FROM_BLOCKS = {
    lv: text(_BLOCKS_FROM_BLOCKS.format(level=lv, ratio=lv // child, child=child))
    for child, lv in zip(LEVELS, LEVELS[1:], strict=False)
}


def _refresh_blocks(conn: Connection, *, run_id: int, key: str, lo: int, hi: int) -> None:
    """Recompute every block of every level that overlaps steps lo..hi, from the rows stored (so
    ignored duplicates never count)."""
    first = LEVELS[0]
    conn.execute(
        _FROM_POINTS[first], {"run_id": run_id, "key": key, "lo": lo // first * first, "hi": (hi // first + 1) * first}
    )
    _refresh_upper_blocks(conn, run_id=run_id, key=key, lo=lo, hi=hi)


def _refresh_upper_blocks(conn: Connection, *, run_id: int, key: str, lo: int, hi: int) -> None:
    """Every coarser level over steps lo..hi, each from the level below it."""
    for child, level in zip(LEVELS, LEVELS[1:], strict=False):
        ratio = level // child
        conn.execute(
            _FROM_BLOCKS[level],
            {"run_id": run_id, "key": key, "lo": lo // level * ratio, "hi": (hi // level + 1) * ratio},
        )


def rebuild_blocks(session: Session, *, run_id: int) -> None:
    """Recompute a run's summaries from its points (after points were removed some other way)."""
    conn = session.connection()
    conn.execute(delete(m.MetricBlock).where(m.MetricBlock.run_id == run_id))
    conn.execute(delete(m.MetricDigest).where(m.MetricDigest.run_id == run_id))
    spans = conn.execute(
        select(m.MetricPoint.key, func.min(m.MetricPoint.step), func.max(m.MetricPoint.step))
        .where(m.MetricPoint.run_id == run_id)
        .group_by(m.MetricPoint.key)
    )
    for key, lo, hi in spans.all():
        _refresh_blocks(conn, run_id=run_id, key=key, lo=int(lo), hi=int(hi))


def delete_points(session: Session, *, run_id: int) -> None:
    """Remove a run's points and their summaries (a new attempt starts clean)."""
    session.execute(
        delete(m.MetricDigest).where(m.MetricDigest.run_id == run_id), execution_options={"synchronize_session": False}
    )
    session.execute(
        delete(m.MetricBlock).where(m.MetricBlock.run_id == run_id), execution_options={"synchronize_session": False}
    )
    session.execute(
        delete(m.MetricPoint).where(m.MetricPoint.run_id == run_id), execution_options={"synchronize_session": False}
    )


# --- read -------------------------------------------------------------------------------------


def read_series(
    session: Session,
    *,
    run_id: int,
    after_step: int = -1,
    keys: Sequence[str] | None = None,
    max_points: int = 1000,
) -> dict[str, Series]:
    """Points after the cursor, at most max_points per key. A longer key is cut into step buckets,
    each kept as its first, last, minimum and maximum point, so spikes stay visible."""
    return reads.read(
        session.connection(),
        run_ids=[run_id],
        keys=keys,
        max_points=max_points,
        after_step=after_step,
        raw_limit=RAW_DOWNSAMPLE_FACTOR * max_points,
    ).get(run_id, {})


def read_series_many(
    session: Session,
    *,
    run_ids: Sequence[int],
    keys: Sequence[str] | None = None,
    max_points: int = 1000,
) -> dict[int, dict[str, Series]]:
    """Every (run, key) series of many runs for a compare page, at most max_points each, in a
    fixed small number of queries (not one per run): {run_id: {key: Series}}. A series longer
    than max_points is read from its block summaries (each block of the coarsest-enough level
    gives its first, minimum, maximum and last point). Runs without points are absent."""
    return reads.read(
        session.connection(), run_ids=run_ids, keys=keys, max_points=max_points, after_step=-1, raw_limit=max_points
    )


def last_step(session: Session, *, run_id: int) -> int:
    """The run's largest step over all keys, or -1 when it has no point."""
    return session.scalar(select(func.max(m.MetricPoint.step)).where(m.MetricPoint.run_id == run_id)) or -1


def count_points(session: Session, *, run_id: int | None = None) -> int:
    """Points stored for one run, or for all runs when `run_id` is None."""
    q = select(func.count()).select_from(m.MetricPoint)
    if run_id is not None:
        q = q.where(m.MetricPoint.run_id == run_id)
    return session.scalar(q) or 0


def metric_keys(session: Session, *, run_id: int, limit: int = 10_000) -> list[str]:
    """The run's keys in order (at most `limit`), by index seeks (backend.store.metrics.keyset)."""
    return keyset.list_keys(session.connection(), run_id=run_id, limit=limit)
