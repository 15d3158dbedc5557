"""Block summaries for the usual batch — points that all come after their series' last stored
step — computed in Python for every level and every key of the batch, then written with one
upsert.

Summaries merge: a block's count adds up, its first point is the earlier part's, its last the
later part's, and its minimum and maximum are the smaller and larger under the same order the
SQL uses (`value ASC NULLS FIRST, step` and `value DESC NULLS LAST, step`). So each level is
summarised from the batch alone, and the one block per level that also holds older points (the
block of the series' last stored step) is merged with its stored row. Two statements per
batch (the stored tails, the upsert) instead of six per key; tests/store/test_block_append.py
checks the result equals a rebuild from the stored points.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from backend.store.db import driver_marks
from backend.store.metrics.reads import LEVELS

Pt = tuple[int, float | None]
# [n, first_step, first_value, last_step, last_value, min_step, min_value, max_step, max_value]
Summary = list[Any]

_COLUMNS = "n, first_step, first_value, last_step, last_value, min_step, min_value, max_step, max_value"
# Positional parameters through the driver's executemany: a batch upserts ~100 block rows, and
# SQLAlchemy's per-row parameter processing cost more than the statement.
UPSERT = (
    f"INSERT INTO metric_blocks (run_id, key, level, block, {_COLUMNS}) VALUES ({{marks}}) "
    "ON CONFLICT (run_id, key, level, block) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", "))
)


def _min_key(step: int, value: float | None) -> tuple[bool, float, int]:
    return (value is not None, value if value is not None else 0.0, step)


def _max_key(step: int, value: float | None) -> tuple[bool, float, int]:
    return (value is None, -value if value is not None else 0.0, step)


def _merge(a: Summary, b: Summary) -> Summary:
    """a's steps all precede b's."""
    mn = a[5:7] if _min_key(*a[5:7]) <= _min_key(*b[5:7]) else b[5:7]
    mx = a[7:9] if _max_key(*a[7:9]) <= _max_key(*b[7:9]) else b[7:9]
    return [a[0] + b[0], a[1], a[2], b[3], b[4], *mn, *mx]


def _from_points(points: list[Pt], width: int) -> dict[int, Summary]:
    """Points sorted by step."""
    out: dict[int, Summary] = {}
    for step, value in points:
        block = step // width
        s = out.get(block)
        if s is None:
            out[block] = [1, step, value, step, value, step, value, step, value]
            continue
        s[0] += 1
        s[3], s[4] = step, value
        if _min_key(step, value) < _min_key(s[5], s[6]):
            s[5], s[6] = step, value
        if _max_key(step, value) < _max_key(s[7], s[8]):
            s[7], s[8] = step, value
    return out


def _coarser(children: dict[int, Summary], ratio: int) -> dict[int, Summary]:
    out: dict[int, Summary] = {}
    for block in sorted(children):
        parent = block // ratio
        prev = out.get(parent)
        out[parent] = list(children[block]) if prev is None else _merge(prev, children[block])
    return out


def tails(conn: Connection, *, run_id: int, keys: list[str]) -> dict[tuple[str, int], tuple[int, Summary]]:
    """The last stored block of each key at each level, {(key, level): (block, summary)}, in one
    statement: per (key, level) pair one primary-key seek for the last block and one for its row,
    so the cost does not grow with the series (a filter over the key's blocks with a correlated
    MAX had read every stored block: ~1 ms per batch at 50,000 steps). It gives each series'
    last step, and the blocks a forward batch shares with older points."""
    mark = driver_marks(conn.dialect, 1)
    sql = (
        f"WITH k(key) AS (VALUES {', '.join([f'({mark})'] * len(keys))}), "
        f"l(level) AS (VALUES {', '.join(f'({level})' for level in LEVELS)}) "
        f"SELECT b.key, b.level, b.block, {_COLUMNS} FROM k CROSS JOIN l JOIN metric_blocks b "
        f"ON b.run_id = {mark} AND b.key = k.key AND b.level = l.level AND b.block = "
        f"(SELECT block FROM metric_blocks WHERE run_id = {mark} AND key = k.key AND level = l.level "
        "ORDER BY block DESC LIMIT 1)"
    )
    rows = conn.exec_driver_sql(sql, (*keys, run_id, run_id))  # type: ignore[arg-type]
    return {(str(r[0]), int(r[1])): (int(r[2]), list(r[3:])) for r in rows}


def ends_of(tail: dict[tuple[str, int], tuple[int, Summary]]) -> dict[str, int]:
    """Each series' last stored step."""
    return {key: s[3] for (key, level), (_, s) in tail.items() if level == LEVELS[-1]}


def append(
    conn: Connection, *, run_id: int, batches: dict[str, list[Pt]], tail: dict[tuple[str, int], tuple[int, Summary]]
) -> None:
    """Summarise `batches` ({key: points after the series' last stored step}) at every level,
    merge the blocks they share with `tail` (see tails()) and upsert them."""
    levels: dict[str, list[dict[int, Summary]]] = {}
    for key, points in batches.items():
        points.sort()
        per_level = [_from_points(points, LEVELS[0])]
        for child, level in zip(LEVELS, LEVELS[1:], strict=False):
            per_level.append(_coarser(per_level[-1], level // child))
        levels[key] = per_level
    params = []
    for key, per_level in levels.items():
        for level, blocks in zip(LEVELS, per_level, strict=True):
            last = tail.get((key, level))
            for block, s in blocks.items():
                if last is not None and last[0] == block:  # holds older points too
                    s = _merge(last[1], s)
                params.append((run_id, key, level, block, *s))
    if params:
        sql = UPSERT.format(marks=driver_marks(conn.dialect, 13))
        conn.exec_driver_sql(sql, params)  # type: ignore[arg-type]
