"""The bulk write path and the downsampled reads, on SQLite and PostgreSQL (db_url fixture):
exact counts, idempotency, spikes and NaNs kept, block summaries equal to the points."""

from __future__ import annotations

import math
import random

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.store import metrics, models
from backend.store.metrics import Point
from tests.factories import make_run


def _run(session: Session, name: str = "m") -> int:
    run = make_run(session, name=name, external=True, max_attempts=1)
    session.flush()
    return run.id


def test_bulk_insert_counts_idempotency_and_first_write_wins(session: Session) -> None:
    rid = _run(session)
    pts = [Point(k, s, float(s)) for k in ("loss", "acc") for s in range(5000)]  # COPY path on PG
    assert metrics.log_batch(session, run_id=rid, points=pts) == 10_000
    # retried batch plus overlap plus an in-batch duplicate: only steps 5000..5004 are new
    again = pts[:100] + [Point("loss", s, -1.0) for s in range(4995, 5005)] + [Point("loss", 5000, 7.0)]
    # log_batch returns the points stored: the 5 new steps, not the 111 offered
    assert metrics.log_batch(session, run_id=rid, points=again) == 5
    big_again = [Point("acc", s, 0.0) for s in range(4800, 5300)]  # COPY path on PG: 300 new
    assert metrics.log_batch(session, run_id=rid, points=big_again) == 300
    small = [Point("loss", 9000 + s, 1.0) for s in range(3)]  # the small-batch path
    assert metrics.log_batch(session, run_id=rid, points=small + small) == 3
    assert metrics.log_batch(session, run_id=rid, points=small) == 0
    assert metrics.count_points(session, run_id=rid) == 10_308
    s = metrics.read_series(session, run_id=rid, keys=["loss"], max_points=100_000)["loss"]
    assert len(s.steps) == 5008 and s.steps == sorted(s.steps)
    assert s.values[4995] == 4995.0 and s.values[5000] == -1.0  # stored first, kept


def test_non_finite_round_trip_in_bulk(session: Session) -> None:
    rid = _run(session)
    pts = [Point("loss", s, 0.5) for s in range(1000)]
    pts[10], pts[20], pts[30] = Point("loss", 10, math.nan), Point("loss", 20, math.inf), Point("loss", 30, -math.inf)
    metrics.log_batch(session, run_id=rid, points=pts)
    v = metrics.read_series(session, run_id=rid, max_points=5000)["loss"].values
    assert math.isnan(v[10]) and v[20] == math.inf and v[30] == -math.inf and v[40] == 0.5
    stored = session.scalar(
        select(models.MetricPoint.value).where(models.MetricPoint.run_id == rid, models.MetricPoint.step == 10)
    )
    assert stored is None  # NaN is NULL in the table


def _brute_blocks(values: dict[int, float | None], level: int) -> dict[int, tuple]:
    out: dict[int, list[tuple[int, float | None]]] = {}
    for step in sorted(values):
        out.setdefault(step // level, []).append((step, values[step]))
    res = {}
    for b, pts in out.items():
        mn = min(pts, key=lambda p: (p[1] is not None, p[1] if p[1] is not None else 0.0, p[0]))
        mx = min(pts, key=lambda p: (p[1] is None, -(p[1] if p[1] is not None else 0.0), p[0]))
        res[b] = (len(pts), pts[0], pts[-1], mn, mx)
    return res


@pytest.mark.parametrize("ordered", [False, True], ids=["shuffled-overlapping", "appending"])
def test_block_summaries_match_points(session: Session, ordered: bool) -> None:
    rid = _run(session)
    rng = random.Random(1)
    steps = list(range(0, 9000, 3)) + list(range(20_000, 20_050))
    if not ordered:
        rng.shuffle(steps)
    size = 37 if ordered else 700  # appending batches that end and start inside one block
    truth: dict[int, float | None] = {}
    for i in range(0, len(steps), size):
        chunk = steps[i : i + size]
        if not ordered:
            chunk += steps[max(0, i - 50) : i]  # overlap with the previous batch
        pts = []
        for s in chunk:
            v = math.nan if rng.random() < 0.01 else round(rng.uniform(-5, 5), 1)  # ties too
            pts.append(Point("x", s, v))
            truth.setdefault(s, None if math.isnan(v) else v)
        metrics.log_batch(session, run_id=rid, points=pts)
    for level in metrics.LEVELS:
        rows = session.execute(
            select(
                models.MetricBlock.block,
                models.MetricBlock.n,
                models.MetricBlock.first_step,
                models.MetricBlock.first_value,
                models.MetricBlock.last_step,
                models.MetricBlock.last_value,
                models.MetricBlock.min_step,
                models.MetricBlock.min_value,
                models.MetricBlock.max_step,
                models.MetricBlock.max_value,
            ).where(models.MetricBlock.run_id == rid, models.MetricBlock.level == level)
        )
        got = {r[0]: (r[1], (r[2], r[3]), (r[4], r[5]), (r[6], r[7]), (r[8], r[9])) for r in rows}
        assert got == _brute_blocks(truth, level), level


def test_read_series_many_bounds_points_keeps_extremes_in_few_queries(session: Session) -> None:
    ids = [_run(session, f"r{i}") for i in range(5)]
    for i, rid in enumerate(ids):
        pts = [Point(k, s, 1.0 + 0.001 * s) for k in ("loss", "val_loss") for s in range(12_000)]
        pts[3000 + i] = Point("loss", 3000 + i, 1e6)  # a spike per run
        pts[7000 + i] = Point("loss", 7000 + i, -1e6)
        pts[9000] = Point("loss", 9000, math.nan)
        metrics.log_batch(session, run_id=rid, points=pts)
    short = _run(session, "short")
    metrics.log_batch(session, run_id=short, points=[Point("loss", s, 2.0) for s in range(50)])
    empty = _run(session, "empty")

    statements: list[str] = []
    from sqlalchemy import event

    conn = session.connection()
    event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
    got = metrics.read_series_many(session, run_ids=[*ids, short, empty], keys=["loss", "val_loss"], max_points=1000)
    assert len(statements) <= 3  # lengths, short series, long series: not one query per run
    assert empty not in got and list(got[short]) == ["loss"] and len(got[short]["loss"].steps) == 50
    for i, rid in enumerate(ids):
        assert sorted(got[rid]) == ["loss", "val_loss"]
        for s in got[rid].values():
            assert 100 <= len(s.steps) <= 1000
            assert s.steps == sorted(set(s.steps)) and s.steps[0] == 0 and s.steps[-1] == 11_999
        pairs = dict(zip(got[rid]["loss"].steps, got[rid]["loss"].values, strict=True))
        assert pairs[3000 + i] == 1e6 and pairs[7000 + i] == -1e6 and math.isnan(pairs[9000])
        v = got[rid]["val_loss"]
        assert v.values[-1] == pytest.approx(1.0 + 0.001 * 11_999)


def test_deleting_points_drops_summaries(session: Session) -> None:
    rid = _run(session)
    metrics.log_batch(session, run_id=rid, points=[Point("loss", s, 1.0) for s in range(3000)])
    session.execute(delete(models.MetricPoint).where(models.MetricPoint.run_id == rid))  # as a retry does
    assert metrics.read_series_many(session, run_ids=[rid]) == {}
    metrics.log_batch(session, run_id=rid, points=[Point("loss", s, 2.0) for s in range(10)])
    got = metrics.read_series_many(session, run_ids=[rid], max_points=4)[rid]["loss"]
    assert set(got.values) == {2.0} and got.steps[0] == 0 and got.steps[-1] == 9
