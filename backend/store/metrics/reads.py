"""The queries behind metrics.read_series / read_series_many, and the assembly of their rows
into Series with numpy (a compare page reads ~60,000 block rows: per-row Python would cost more
than the query).

Three ways to read a series, chosen from its length (known from the coarsest block summaries):
all its points when it fits in max_points; bucketed from its points with window functions when it
is a little longer (one run's page); from the block summaries of the coarsest-enough level when
it is long (a block gives its first, minimum, maximum and last point) — for a finished run, from
its digest of that level: the same points, packed in one row per series, so 100 runs read 400
rows instead of ~60,000.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection

from backend.store.records import Series

LEVELS = (16, 64, 256, 1024, 4096)  # block widths in steps, finest first (see metrics.py)
TOP = LEVELS[-1]

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
    ROW_NUMBER() OVER (PARTITION BY run_id, key, bucket
                       ORDER BY value ASC NULLS FIRST, step) AS rmin,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, bucket
                       ORDER BY value DESC NULLS LAST, step) AS rmax,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, bucket ORDER BY step) AS rfirst,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, bucket ORDER BY step DESC) AS rlast
  FROM b
)
SELECT run_id, key, step, value FROM r
WHERE rmin = 1 OR rmax = 1 OR rfirst = 1 OR rlast = 1
ORDER BY run_id, key, step
"""
_PLAIN_SQL = "SELECT run_id, key, step, value FROM metric_points WHERE {where} ORDER BY run_id, key, step"
_BLOCKS_SQL = (
    "SELECT run_id, key, first_step, first_value, min_step, min_value, max_step, "
    "max_value, last_step, last_value FROM metric_blocks "
    "WHERE level = {level} AND {where}"
)  # ordered in numpy: no sort spilling to disk
_DIGESTS_SQL = (
    "SELECT run_id, key, n, first_step, last_step, data FROM metric_digests WHERE level = {level} AND {where}"
)
_LENGTHS_SQL = (
    "SELECT run_id, key, SUM(n), MIN(first_step), MAX(last_step) FROM metric_blocks "
    "WHERE level = {level} AND {where} GROUP BY run_id, key"
)


def _rows(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Plain tuples from the driver's cursor, inside the session's transaction (no Row objects:
    10^5 of them cost more than the query). Parameters are written `:name`."""
    if conn.dialect.name == "postgresql":
        sql = re.sub(r":(\w+)", r"%(\1)s", sql)
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(sql, params)
        return cur.fetchall()
    finally:
        cur.close()


def _runs_where(run_ids: Sequence[int], keys: Sequence[str] | None, params: dict[str, Any], tag: str = "k") -> str:
    # Run ids are ints (cast here), so they are written inline: hundreds of bound parameters
    # cost more to bind than the query. Keys are bound.
    clause = f"run_id IN ({', '.join(str(int(r)) for r in run_ids)})"
    if keys:
        names = []
        for i, k in enumerate(keys):
            params[f"{tag}{i}"] = k
            names.append(f":{tag}{i}")
        clause += f" AND key IN ({', '.join(names)})"
    return clause


def _pairs_where(pairs: Sequence[tuple[int, str]], params: dict[str, Any]) -> str:
    """(run, key) pairs grouped by key set: `(run_id IN (1, 2) AND key IN (...)) OR ...`, index
    searches on both backends (a row-value IN (VALUES ...) makes SQLite scan the index)."""
    keys_by_run: dict[int, list[str]] = {}
    for run_id, key in pairs:
        keys_by_run.setdefault(run_id, []).append(key)
    runs_by_keys: dict[tuple[str, ...], list[int]] = {}
    for run_id, keys in keys_by_run.items():
        runs_by_keys.setdefault(tuple(sorted(keys)), []).append(run_id)
    terms = [
        f"({_runs_where(runs, keys, params, tag=f'p{i}_')})" for i, (keys, runs) in enumerate(runs_by_keys.items())
    ]
    return f"({' OR '.join(terms)})"


def _series_bounds(run: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Row indices where a new (run, key) series starts, plus the end."""
    starts = np.ones(len(run), dtype=bool)
    starts[1:] = (run[1:] != run[:-1]) | (key[1:] != key[:-1])
    return np.append(np.flatnonzero(starts), len(run))


def _floats(col: Sequence[Any] | np.ndarray) -> np.ndarray:
    return np.array(col, dtype=np.float64)  # None (NaN stored as NULL) becomes nan


def _add_points(out: dict[int, dict[str, Series]], rows: list[tuple[Any, ...]]) -> None:
    """Rows (run_id, key, step, value) ordered by run, key, step."""
    if not rows:
        return
    run, key, step, value = (np.array(c, dtype=object) for c in zip(*rows, strict=True))
    steps, values = np.array(step, dtype=np.int64), _floats(value)
    bounds = _series_bounds(run, key)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        out.setdefault(int(run[a]), {})[str(key[a])] = Series(steps[a:b].tolist(), values[a:b].tolist())


def block_series(rows: list[tuple[Any, ...]]) -> Iterator[tuple[int, str, np.ndarray, np.ndarray]]:
    """Block rows of whole series, in any order: each gives its first, minimum, maximum and last
    point in step order, each step once (first <= min, max <= last, so only neighbours repeat).
    Column-wise with numpy: a compare page reads ~60,000 of these rows. Yields
    (run_id, key, steps, values) per series."""
    if not rows:
        return
    cols = list(zip(*rows, strict=True))
    run, key = np.array(cols[0], dtype=np.int64), np.array(cols[1], dtype=object)
    fs, ns, xs, ls = (np.array(cols[i], dtype=np.int64) for i in (2, 4, 6, 8))
    fv, nv, xv, lv = (_floats(cols[i]) for i in (3, 5, 7, 9))
    codes = {k: i for i, k in enumerate(sorted(set(cols[1])))}
    order = np.lexsort((fs, np.array([codes[k] for k in cols[1]]), run))  # run, key, block
    run, key, fs, ns, xs, ls, fv, nv, xv, lv = (a[order] for a in (run, key, fs, ns, xs, ls, fv, nv, xv, lv))
    swap = ns > xs
    steps = np.stack([fs, np.where(swap, xs, ns), np.where(swap, ns, xs), ls], axis=1).ravel()
    values = np.stack([fv, np.where(swap, xv, nv), np.where(swap, nv, xv), lv], axis=1).ravel()
    bounds = _series_bounds(run, key)
    keep = np.ones(len(steps), dtype=bool)
    keep[1:] = steps[1:] != steps[:-1]
    keep[4 * bounds[:-1]] = True  # a series' first point, whatever the previous series ended on
    kept = np.flatnonzero(keep)
    steps, values = steps[kept], values[kept]
    cuts = np.searchsorted(kept, 4 * bounds)
    for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
        r = bounds[i]
        yield int(run[r]), str(key[r]), steps[a:b], values[a:b]


def _add_blocks(out: dict[int, dict[str, Series]], rows: list[tuple[Any, ...]]) -> None:
    for run_id, key, steps, values in block_series(rows):
        out.setdefault(run_id, {})[key] = Series(steps.tolist(), values.tolist())


# --- digests: a finished run's block points, packed (backend.store.metrics.digests builds them) --


def pack(steps: np.ndarray, values: np.ndarray) -> bytes:
    """A series as bytes: int64 steps then float64 values (native byte order), equal length."""
    return steps.astype("<i8").tobytes() + values.astype("<f8").tobytes()


def unpack(data: bytes) -> Series:
    """The series `pack` wrote."""
    n = len(data) // 16
    return Series(np.frombuffer(data, "<i8", n).tolist(), np.frombuffer(data, "<f8", n, 8 * n).tolist())


def _add_digests(
    out: dict[int, dict[str, Series]],
    conn: Connection,
    level: int,
    pairs: list[tuple[int, str]],
    spans: dict[tuple[int, str], tuple[int, int, int]],
) -> list[tuple[int, str]]:
    """Series whose digest still matches their (n, first, last); returns the pairs without one."""
    params: dict[str, Any] = {}
    rows = _rows(conn, _DIGESTS_SQL.format(level=level, where=_pairs_where(pairs, params)), params)
    found: set[tuple[int, str]] = set()
    for run_id, key, n, lo, hi, data in rows:
        pair = (int(run_id), str(key))
        if spans.get(pair) == (int(n), int(lo), int(hi)):
            out.setdefault(pair[0], {})[pair[1]] = unpack(bytes(data))
            found.add(pair)
    return [p for p in pairs if p not in found]


def read(
    conn: Connection,
    *,
    run_ids: Sequence[int],
    keys: Sequence[str] | None,
    max_points: int,
    after_step: int,
    raw_limit: int,
) -> dict[int, dict[str, Series]]:
    """Series of `run_ids` (× `keys`, all keys when None) after `after_step`: run id → key → Series.

    A cursor poll (`after_step` ≥ 0) buckets the new points exactly; a full read takes a series of
    up to `raw_limit` points from the points and a longer one from the block summaries (or a
    finished run's digest) at the coarsest level giving ≥ max_points/4 blocks, keeping each
    bucket's first, last, minimum and maximum, so spikes and NaN survive downsampling.
    """
    max_points = max(4, max_points)
    buckets = max(1, max_points // 4)
    run_ids = list(dict.fromkeys(int(r) for r in run_ids))
    keys = list(dict.fromkeys(keys)) if keys else None
    out: dict[int, dict[str, Series]] = {}
    if not run_ids:
        return out
    if after_step >= 0:
        # A cursor poll: few new points, bucketed exactly from the points.
        params: dict[str, Any] = {"after": after_step, "max_points": max_points, "buckets": buckets}
        where = _runs_where(run_ids, keys, params)
        _add_points(out, _rows(conn, _WINDOW_SQL.format(where=where), params))
        return _sorted(out)

    params = {}
    lengths = _rows(conn, _LENGTHS_SQL.format(level=TOP, where=_runs_where(run_ids, keys, params)), params)
    plain: list[tuple[int, str]] = []
    window: list[tuple[int, str]] = []
    by_level: dict[int, list[tuple[int, str]]] = {}
    spans: dict[tuple[int, str], tuple[int, int, int]] = {}
    for run_id, key, n, lo, hi in lengths:
        pair = (int(run_id), str(key))
        spans[pair] = (int(n), int(lo), int(hi))
        if n <= max_points:
            plain.append(pair)
            continue
        level = next((lv for lv in LEVELS if hi // lv - lo // lv + 1 <= buckets), None)
        if n <= raw_limit or level is None:
            window.append(pair)
        else:
            by_level.setdefault(level, []).append(pair)
    if plain:
        params = {}
        _add_points(out, _rows(conn, _PLAIN_SQL.format(where=_pairs_where(plain, params)), params))
    if window:
        params = {"after": -1, "max_points": max_points, "buckets": buckets}
        _add_points(out, _rows(conn, _WINDOW_SQL.format(where=_pairs_where(window, params)), params))
    for level, pairs in by_level.items():
        pairs = _add_digests(out, conn, level, pairs, spans)
        if not pairs:
            continue
        params = {}
        sql = _BLOCKS_SQL.format(level=level, where=_pairs_where(pairs, params))
        _add_blocks(out, _rows(conn, sql, params))
    return _sorted(out)


def _sorted(out: dict[int, dict[str, Series]]) -> dict[int, dict[str, Series]]:
    return {rid: dict(sorted(by_key.items())) for rid, by_key in out.items()}


# A series' last point is the last point of its last top-level block (one index seek per key).
_LAST_VALUES_SQL = (
    "SELECT b.key, b.last_value FROM metric_blocks b "
    f"WHERE b.run_id = :run AND b.level = {TOP} AND b.block = "
    f"(SELECT MAX(block) FROM metric_blocks WHERE run_id = :run AND key = b.key AND level = {TOP})"
)


def last_values(conn: Connection, *, run_id: int) -> dict[str, float | str | None]:
    """{key: the value at its last step} of every series of the run (NaN as None, ±inf as the
    strings "Infinity"/"-Infinity"), read from
    the top-level block summaries: the run summary that trackers show beside a run."""
    return {str(k): _json_number(v) for k, v in _rows(conn, _LAST_VALUES_SQL, {"run": run_id})}


def _json_number(value: float | None) -> float | str | None:
    """A value JSON on every backend can hold: NaN as None, ±inf as "Infinity"/"-Infinity"
    (PostgreSQL's json refuses the bare literals), as the metrics API writes them."""
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(value)
