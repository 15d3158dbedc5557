"""Digests: a finished run's compare read comes from one packed row per series and returns
exactly what the block summaries give; a digest that no longer matches its series is ignored."""

from __future__ import annotations

import math

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.store import metrics, runs
from backend.store import models as m
from backend.store.metrics import Point
from backend.store.metrics import digests as metric_digests
from backend.store.metrics import reads as metric_reads
from tests.factories import make_run

STEPS = 5000


def _run_with_points(session: Session, name: str, *, spike_at: int) -> int:
    run = make_run(session, name=name, experiment="d", external=True)
    pts = []
    for s in range(STEPS):
        loss = 2.0 * math.exp(-s / 1500) + 0.01 * math.sin(s)
        pts.append(Point("loss", s, 50.0 if s == spike_at else loss))
        pts.append(Point("acc", s, math.nan if s == spike_at + 7 else 1 - loss / 2))
    metrics.log_batch(session, run_id=run.id, points=pts)
    return run.id


def _read(session: Session, ids: list[int]) -> dict:
    out = metrics.read_series_many(session, run_ids=ids, keys=["loss", "acc"], max_points=1000)
    return {
        (r, k): (s.steps, [None if math.isnan(v) else v for v in s.values])
        for r, by in out.items()
        for k, s in by.items()
    }


def _digest_rows(session: Session, run_id: int) -> int:
    return session.scalar(select(func.count()).select_from(m.MetricDigest).where(m.MetricDigest.run_id == run_id)) or 0


def test_finishing_a_run_digests_it_and_reads_are_unchanged(session: Session) -> None:
    a = _run_with_points(session, "a", spike_at=1234)
    b = _run_with_points(session, "b", spike_at=4321)
    from_blocks = _read(session, [a, b])
    assert _digest_rows(session, a) == 0

    assert runs.finish_run(session, run_id=a, lease=None, status="succeeded")
    assert _digest_rows(session, a) > 0  # built in the same transaction as the finish

    used: list[str] = []
    real_rows = metric_reads._rows

    def spy(conn, sql, params):  # type: ignore[no-untyped-def]
        used.append(sql.split(" FROM ")[1].split()[0])
        return real_rows(conn, sql, params)

    metric_reads._rows = spy
    try:
        assert _read(session, [a, b]) == from_blocks  # every step and value, the spike and the NaN too
    finally:
        metric_reads._rows = real_rows
    assert "metric_digests" in used and "metric_blocks" in used  # a from its digest, b (running) from blocks
    steps, values = from_blocks[(a, "loss")]
    assert len(steps) <= 1000 and 50.0 in values and steps[0] == 0 and steps[-1] == STEPS - 1
    assert None in from_blocks[(a, "acc")][1]


def test_a_digest_that_no_longer_matches_is_ignored(session: Session) -> None:
    a = _run_with_points(session, "a", spike_at=100)
    assert runs.finish_run(session, run_id=a, lease=None, status="succeeded")
    # a late batch (written after the digest): the read must show it
    metrics.log_batch(session, run_id=a, points=[Point("loss", STEPS + 10, -99.0)])
    steps, values = _read(session, [a])[(a, "loss")]
    assert steps[-1] == STEPS + 10 and -99.0 in values


def test_backfill_digests_finished_runs_without_one(session: Session) -> None:
    a = _run_with_points(session, "a", spike_at=10)
    assert runs.finish_run(session, run_id=a, lease=None, status="failed", error="x")
    session.execute(m.MetricDigest.__table__.delete())  # as before digests existed
    running = _run_with_points(session, "running", spike_at=20)
    before = _read(session, [a])
    assert metric_digests.backfill(session) == [a]  # not the running one
    assert _digest_rows(session, a) > 0 and _digest_rows(session, running) == 0
    assert metric_digests.backfill(session) == []
    assert _read(session, [a]) == before


def test_every_series_gets_a_digest_even_when_all_levels_are_too_fine(session: Session, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(metric_digests, "MAX_BLOCKS", 1)  # as for a series of over 4 M steps
    a = _run_with_points(session, "a", spike_at=10)
    b = _run_with_points(session, "b", spike_at=20)
    for run_id in (a, b):
        assert runs.finish_run(session, run_id=run_id, lease=None, status="succeeded")
    session.execute(m.MetricDigest.__table__.delete())
    assert metric_digests.backfill(session, limit=1) == [b]
    assert metric_digests.backfill(session, limit=1) == [a]  # b is not picked again
    assert metric_digests.backfill(session, limit=1) == []
