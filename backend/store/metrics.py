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

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.records import Series

# Block widths in steps, finest first; each level is summarised from the one below it.
LEVELS = (16, 64, 256, 1024, 4096)
TOP = LEVELS[-1]
# read_series (one run's page) downsamples series up to this many points exactly from the points;
# longer ones come from blocks.
RAW_DOWNSAMPLE_LIMIT = 20_000
# Below this many rows a PostgreSQL COPY round trip costs more than a pipelined executemany.
_COPY_MIN_ROWS = 200


@dataclass(frozen=True)
class Point:
    key: str
    step: int
    value: float
    wall_time: float | None = None


def _stored(value: float) -> float | None:
    # NaN is kept as NULL: SQLite has no NaN. ±inf is stored as is on both backends.
    return None if math.isnan(value) else value


# --- write ------------------------------------------------------------------------------------

def log_batch(session: Session, *, run_id: int, points: Iterable[Point]) -> int:
    """Insert points; a point whose (run, key, step) exists is ignored (first write wins), so a
    retried batch never duplicates. Returns how many points were offered."""
    now = time.time()
    offered = 0
    rows: list[tuple[int, str, int, float | None, float]] = []
    seen: set[tuple[str, int]] = set()
    spans: dict[str, list[int]] = {}
    for p in points:
        offered += 1
        ks = (p.key, p.step)
        if ks in seen:  # first write wins inside a batch too
            continue
        seen.add(ks)
        rows.append((run_id, p.key, p.step, _stored(p.value),
                     p.wall_time if p.wall_time is not None else now))
        span = spans.get(p.key)
        if span is None:
            spans[p.key] = [p.step, p.step]
        elif p.step < span[0]:
            span[0] = p.step
        elif p.step > span[1]:
            span[1] = p.step
    if not rows:
        return 0
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        _insert_postgresql(conn, rows)
    else:
        _insert_generic(conn, rows)
    for key, (lo, hi) in spans.items():
        _refresh_blocks(conn, run_id=run_id, key=key, lo=lo, hi=hi)
    return offered


_INSERT = ("INSERT INTO metric_points (run_id, key, step, value, wall_time) VALUES ({ph}) "
           "ON CONFLICT (run_id, key, step) DO NOTHING")


def _insert_generic(conn: Connection, rows: list[tuple[int, str, int, float | None, float]]) -> None:
    # One executemany of positional tuples: no per-row dict or ORM work.
    conn.exec_driver_sql(_INSERT.format(ph="?, ?, ?, ?, ?"), rows)  # type: ignore[arg-type]


def _insert_postgresql(conn: Connection, rows: list[tuple[int, str, int, float | None, float]]) -> None:
    if len(rows) < _COPY_MIN_ROWS:
        conn.exec_driver_sql(_INSERT.format(ph="%s, %s, %s, %s, %s"), rows)  # type: ignore[arg-type]
        return
    raw = conn.connection.driver_connection  # psycopg 3, inside the session's transaction
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS metric_points_in (run_id integer, key text, "
            "step bigint, value double precision, wall_time double precision) ON COMMIT DELETE ROWS")
        with cur.copy("COPY metric_points_in (run_id, key, step, value, wall_time) "
                      "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "text", "int8", "float8", "float8"])
            for row in rows:
                copy.write_row(row)
        cur.execute("INSERT INTO metric_points (run_id, key, step, value, wall_time) "
                    "SELECT run_id, key, step, value, wall_time FROM metric_points_in "
                    "ON CONFLICT (run_id, key, step) DO NOTHING")
        # Emptied now, not only at commit: a unit of work may log several batches.
        cur.execute("DELETE FROM metric_points_in")


_BLOCK_COLUMNS = ("n, first_step, first_value, last_step, last_value, "
                  "min_step, min_value, max_step, max_value")
_UPSERT_TAIL = (" ON CONFLICT (run_id, key, level, block) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in _BLOCK_COLUMNS.split(", ")))
_PIVOT = """MAX(CASE WHEN rf = 1 THEN {fs} END), MAX(CASE WHEN rf = 1 THEN {fv} END),
  MAX(CASE WHEN rl = 1 THEN {ls} END), MAX(CASE WHEN rl = 1 THEN {lv} END),
  MAX(CASE WHEN rmin = 1 THEN {ns} END), MAX(CASE WHEN rmin = 1 THEN {nv} END),
  MAX(CASE WHEN rmax = 1 THEN {xs} END), MAX(CASE WHEN rmax = 1 THEN {xv} END)"""

# The finest level, from the points themselves.
_BLOCKS_FROM_POINTS = f"""
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
) AS t WHERE true GROUP BY b""" + _UPSERT_TAIL

# A coarser level, from the blocks of the level below (ratio children per parent).
_BLOCKS_FROM_BLOCKS = f"""
INSERT INTO metric_blocks (run_id, key, level, block, {_BLOCK_COLUMNS})
SELECT :run_id, :key, {{level}}, b, SUM(n),
  {_PIVOT.format(fs="first_step", fv="first_value", ls="last_step", lv="last_value",
                 ns="min_step", nv="min_value", xs="max_step", xv="max_value")}
FROM (
  SELECT block / {{ratio}} AS b, n, first_step, first_value, last_step, last_value,
    min_step, min_value, max_step, max_value,
    ROW_NUMBER() OVER (PARTITION BY block / {{ratio}} ORDER BY block) AS rf,
    ROW_NUMBER() OVER (PARTITION BY block / {{ratio}} ORDER BY block DESC) AS rl,
    ROW_NUMBER() OVER (PARTITION BY block / {{ratio}} ORDER BY min_value ASC NULLS FIRST, min_step) AS rmin,
    ROW_NUMBER() OVER (PARTITION BY block / {{ratio}} ORDER BY max_value DESC NULLS LAST, max_step) AS rmax
  FROM metric_blocks
  WHERE run_id = :run_id AND key = :key AND level = {{child}} AND block >= :lo AND block < :hi
) AS t WHERE true GROUP BY b""" + _UPSERT_TAIL

_FROM_POINTS = {lv: text(_BLOCKS_FROM_POINTS.format(level=lv)) for lv in LEVELS[:1]}
_FROM_BLOCKS = {
    lv: text(_BLOCKS_FROM_BLOCKS.format(level=lv, ratio=lv // child, child=child))
    for child, lv in zip(LEVELS, LEVELS[1:], strict=False)
}


def _refresh_blocks(conn: Connection, *, run_id: int, key: str, lo: int, hi: int) -> None:
    """Recompute every block of every level that overlaps steps lo..hi, from the rows stored (so
    ignored duplicates never count)."""
    first = LEVELS[0]
    conn.execute(_FROM_POINTS[first], {"run_id": run_id, "key": key,
                                       "lo": lo // first * first, "hi": (hi // first + 1) * first})
    for child, level in zip(LEVELS, LEVELS[1:], strict=False):
        ratio = level // child
        conn.execute(_FROM_BLOCKS[level], {"run_id": run_id, "key": key,
                                           "lo": lo // level * ratio, "hi": (hi // level + 1) * ratio})


def rebuild_blocks(session: Session, *, run_id: int) -> None:
    """Recompute a run's summaries from its points (after points were removed some other way)."""
    conn = session.connection()
    conn.execute(m.MetricBlock.__table__.delete().where(m.MetricBlock.run_id == run_id))
    spans = conn.execute(
        select(m.MetricPoint.key, func.min(m.MetricPoint.step), func.max(m.MetricPoint.step))
        .where(m.MetricPoint.run_id == run_id).group_by(m.MetricPoint.key))
    for key, lo, hi in spans.all():
        _refresh_blocks(conn, run_id=run_id, key=key, lo=int(lo), hi=int(hi))


def delete_points(session: Session, *, run_id: int) -> None:
    """Remove a run's points and their summaries (a new attempt starts clean)."""
    session.execute(m.MetricBlock.__table__.delete().where(m.MetricBlock.run_id == run_id))
    session.execute(m.MetricPoint.__table__.delete().where(m.MetricPoint.run_id == run_id))


# --- read -------------------------------------------------------------------------------------

def read_series(
    session: Session, *, run_id: int, after_step: int = -1, keys: Sequence[str] | None = None,
    max_points: int = 1000,
) -> dict[str, Series]:
    """Points after the cursor, at most max_points per key. A longer key is cut into step buckets,
    each kept as its first, last, minimum and maximum point, so spikes stay visible."""
    return _read(session, run_ids=[run_id], keys=keys, max_points=max_points,
                 after_step=after_step, raw_limit=RAW_DOWNSAMPLE_LIMIT).get(run_id, {})


def read_series_many(
    session: Session, *, run_ids: Sequence[int], keys: Sequence[str] | None = None,
    max_points: int = 1000,
) -> dict[int, dict[str, Series]]:
    """Every (run, key) series of many runs for a compare page, at most max_points each, in a
    fixed small number of queries (no query per run). A series longer than max_points is read
    from its block summaries: each block of the coarsest-enough level gives its first, last,
    minimum and maximum point. Runs without points are absent from the result."""
    return _read(session, run_ids=run_ids, keys=keys, max_points=max_points, after_step=-1,
                 raw_limit=max_points)


_WINDOW_SQL = """
WITH s AS (
  SELECT run_id, key, step, value,
         MIN(step) OVER (PARTITION BY run_id, key) AS lo,
         MAX(step) OVER (PARTITION BY run_id, key) AS hi,
         COUNT(*) OVER (PARTITION BY run_id, key) AS n
  FROM metric_points
  WHERE {where} AND step > :after
), b AS (
  SELECT run_id, key, step, value,
         CASE WHEN n <= :max_points THEN step
              ELSE ((step - lo) * :buckets) / (hi - lo + 1) END AS bucket
  FROM s
), r AS (
  SELECT run_id, key, step, value,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, bucket ORDER BY value ASC NULLS FIRST, step) AS rmin,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, bucket ORDER BY value DESC NULLS LAST, step) AS rmax,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, bucket ORDER BY step) AS rfirst,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, bucket ORDER BY step DESC) AS rlast
  FROM b
)
SELECT run_id, key, step, value FROM r
WHERE rmin = 1 OR rmax = 1 OR rfirst = 1 OR rlast = 1
ORDER BY run_id, key, step
"""

_PLAIN_SQL = "SELECT run_id, key, step, value FROM metric_points WHERE {where} ORDER BY run_id, key, step"

_BLOCKS_SQL = ("SELECT run_id, key, first_step, first_value, min_step, min_value, max_step, "
               "max_value, last_step, last_value FROM metric_blocks "
               "WHERE level = {level} AND {where} ORDER BY run_id, key, block")


def _pairs_clause(pairs: Sequence[tuple[int, str]], params: dict[str, object]) -> str:
    """`(run_id, key) IN (VALUES ...)`: one index probe per series, valid on both backends."""
    values = []
    for i, (run_id, key) in enumerate(pairs):
        params[f"r{i}"], params[f"k{i}"] = run_id, key
        values.append(f"(:r{i}, :k{i})")
    return f"(run_id, key) IN (VALUES {', '.join(values)})"


def _runs_clause(run_ids: Sequence[int], keys: Sequence[str] | None, params: dict[str, object],
                 *, table: str = "") -> str:
    prefix = f"{table}." if table else ""
    for i, r in enumerate(run_ids):
        params[f"run{i}"] = r
    clause = f"{prefix}run_id IN ({', '.join(f':run{i}' for i in range(len(run_ids)))})"
    if keys:
        for i, k in enumerate(keys):
            params[f"key{i}"] = k
        clause += f" AND {prefix}key IN ({', '.join(f':key{i}' for i in range(len(keys)))})"
    return clause


def _add(out: dict[int, dict[str, Series]], run_id: int, key: str, step: int, value: float | None) -> None:
    series = out.setdefault(run_id, {}).setdefault(key, Series())
    series.steps.append(int(step))
    series.values.append(math.nan if value is None else float(value))


def _read(session: Session, *, run_ids: Sequence[int], keys: Sequence[str] | None, max_points: int,
          after_step: int, raw_limit: int) -> dict[int, dict[str, Series]]:
    max_points = max(4, max_points)
    buckets = max(1, max_points // 4)
    run_ids = list(dict.fromkeys(int(r) for r in run_ids))
    keys = list(dict.fromkeys(keys)) if keys else None
    out: dict[int, dict[str, Series]] = {}
    if not run_ids:
        return out
    conn = session.connection()
    if after_step >= 0:
        # A cursor poll: few new points, downsampled exactly from the points.
        params: dict[str, object] = {"after": after_step, "max_points": max_points, "buckets": buckets}
        where = _runs_clause(run_ids, keys, params)
        for run_id, key, step, value in conn.execute(text(_WINDOW_SQL.format(where=where)), params):
            _add(out, run_id, key, step, value)
        return out

    # 1. how long is each series (from the coarsest summaries: a few rows per series)
    params = {}
    stats = conn.execute(text(
        f"SELECT run_id, key, SUM(n), MIN(first_step), MAX(last_step) FROM metric_blocks "
        f"WHERE level = {TOP} AND {_runs_clause(run_ids, keys, params)} GROUP BY run_id, key"), params)
    plain: list[tuple[int, str]] = []
    window: list[tuple[int, str]] = []
    by_level: dict[int, list[tuple[int, str]]] = {}
    for run_id, key, n, lo, hi in stats:
        pair = (int(run_id), str(key))
        if n <= max_points:
            plain.append(pair)
            continue
        level = next((lv for lv in LEVELS if hi // lv - lo // lv + 1 <= buckets), None)
        if n <= raw_limit or level is None:
            window.append(pair)
        else:
            by_level.setdefault(level, []).append(pair)

    # 2. short series as they are; mid-sized ones downsampled from the points; long ones from blocks
    if plain:
        params = {}
        where = _pairs_clause(plain, params)
        for run_id, key, step, value in conn.execute(text(_PLAIN_SQL.format(where=where)), params):
            _add(out, run_id, key, step, value)
    if window:
        params = {"after": -1, "max_points": max_points, "buckets": buckets}
        where = _pairs_clause(window, params)
        for run_id, key, step, value in conn.execute(text(_WINDOW_SQL.format(where=where)), params):
            _add(out, run_id, key, step, value)
    for level, pairs in by_level.items():
        params = {}
        where = _pairs_clause(pairs, params)
        for row in conn.execute(text(_BLOCKS_SQL.format(level=level, where=where)), params):
            run_id, key = row[0], row[1]
            series = out.setdefault(run_id, {}).setdefault(key, Series())
            # first, min, max, last of the block, in step order, each step once
            pts = sorted({row[i]: row[i + 1] for i in (2, 4, 6, 8)}.items())
            for step, value in pts:
                series.steps.append(int(step))
                series.values.append(math.nan if value is None else float(value))
    for series_by_key in out.values():
        for key in sorted(series_by_key):  # stable key order: sorted, as one query would give
            series_by_key[key] = series_by_key.pop(key)
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
