"""Promise 3 and 4 at the store, on SQLite and PostgreSQL: terminal states never change, a
late success never overwrites a cancel, the reaper requeues under the attempt cap or fails,
exactly one of many concurrent claims wins the lease, metric writes are idempotent."""

from __future__ import annotations

import math
import multiprocessing
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from backend.store import metrics, runs
from backend.store import models as m
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from backend.store.metrics import Point
from runspec.vocabulary import TERMINAL_STATUSES
from tests.factories import make_run


def _new_run(session: Session, name: str = "r") -> int:
    run = make_run(session, name=name)
    session.flush()
    return run.id


def _to_terminal(session: Session, status: str) -> int:
    run_id = _new_run(session, status)
    lease = runs.claim_run(session, run_id=run_id, worker="w")
    assert lease
    assert runs.finish_run(session, run_id=run_id, lease=lease, status=status)
    return run_id


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_a_terminal_state_never_changes(session: Session, status: str) -> None:
    run_id = _to_terminal(session, status)
    before = runs.get_run(session, run_id=run_id)
    assert before is not None and before.status == status
    later = m.utcnow() + timedelta(days=1)
    assert runs.claim_run(session, run_id=run_id, worker="late") is None
    for other in sorted(TERMINAL_STATUSES):
        assert not runs.finish_run(session, run_id=run_id, lease=None, status=other)
        assert not runs.finish_run(session, run_id=run_id, lease="stale-lease", status=other)
    assert runs.heartbeat(session, run_id=run_id, lease="stale-lease") == "lost"
    runs.request_cancel(session, run_id=run_id)
    assert runs.reap_stale(session, timeout_s=1, now=later) == runs.ReapResult([], [])
    assert not runs.fail_queued(session, run_id=run_id, error="x")
    after = runs.get_run(session, run_id=run_id)
    assert after is not None
    assert (after.status, after.finished_at, after.attempt) == (status, before.finished_at, before.attempt)


def test_a_late_success_never_overwrites_a_cancel(session: Session) -> None:
    run_id = _new_run(session)
    lease = runs.claim_run(session, run_id=run_id, worker="w")
    metrics.log_batch(session, run_id=run_id, points=[Point("loss", 0, 1.0)])
    cancelling = runs.request_cancel(session, run_id=run_id)
    assert cancelling is not None and cancelling.status == "running" and cancelling.cancel_requested
    # The job finished its last batch before it saw the request, and reports success:
    assert runs.finish_run(session, run_id=run_id, lease=lease, status="succeeded")
    run = runs.get_run(session, run_id=run_id)
    assert run is not None and run.status == "cancelled" and run.progress < 1.0
    assert metrics.count_points(session, run_id=run_id) == 1  # it keeps its metrics
    assert not runs.finish_run(session, run_id=run_id, lease=lease, status="succeeded")


def test_the_reaper_requeues_under_the_cap_then_fails_with_the_attempt_shown(session: Session) -> None:
    run_id = _new_run(session)
    for attempt in (1, 2):
        lease = runs.claim_run(session, run_id=run_id, worker=f"w{attempt}")
        assert lease is not None
        metrics.log_batch(session, run_id=run_id, points=[Point("loss", s, float(attempt)) for s in range(5)])
        reaped = runs.reap_stale(session, timeout_s=10, now=m.utcnow() + timedelta(seconds=11))
        run = runs.get_run(session, run_id=run_id)
        assert run is not None and run.attempt == attempt
        if attempt == 1:
            assert reaped.requeued == [run_id] and run.status == "queued"
            assert "attempt 2 of 2 next" in (run.error or "")
            assert "reaper:" in run.log_tail[-1]
        else:
            assert reaped.failed == [run_id] and run.status == "failed"
            assert "attempt 2 of 2" in (run.error or "") and run.finished_at is not None
        # The lost attempt must stop writing: its lease is gone.
        assert runs.heartbeat(session, run_id=run_id, lease=lease) == "lost"
    # A run that was asked to stop and whose worker then died ends cancelled, not requeued.
    other = _new_run(session)
    runs.claim_run(session, run_id=other, worker="w")
    runs.request_cancel(session, run_id=other)
    assert runs.reap_stale(session, timeout_s=10, now=m.utcnow() + timedelta(seconds=11)).failed == [other]
    assert runs.get_run(session, run_id=other).status == "cancelled"  # type: ignore[union-attr]


def test_a_new_attempt_starts_with_clean_points(session: Session) -> None:
    run_id = _new_run(session)
    runs.claim_run(session, run_id=run_id, worker="w1")
    metrics.log_batch(session, run_id=run_id, points=[Point("loss", s, 9.0) for s in range(50)])
    runs.reap_stale(session, timeout_s=1, now=m.utcnow() + timedelta(seconds=5))
    runs.claim_run(session, run_id=run_id, worker="w2")
    assert metrics.count_points(session, run_id=run_id) == 0


def test_metric_writes_are_idempotent_per_run_key_step(session: Session) -> None:
    run_id = _new_run(session)
    batch = [Point("loss", s, float(s)) for s in range(100)] + [Point("loss", 5, math.nan), Point("acc", 1, math.inf)]
    for _ in range(3):  # a retried flush, a redelivered batch
        metrics.log_batch(session, run_id=run_id, points=batch)
    metrics.log_batch(session, run_id=run_id, points=[Point("loss", s, -1.0) for s in range(50, 150)])
    assert metrics.count_points(session, run_id=run_id) == 151
    series = metrics.read_series(session, run_id=run_id, max_points=1000)
    assert series["loss"].values[5] == 5.0 and series["loss"].values[60] == 60.0  # first write wins
    assert series["acc"].values == [math.inf]


def _claim(
    db_url: str, run_ids: list[int], barrier: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    engine = make_engine(db_url, busy_timeout_ms=60_000)
    factory = make_sessionmaker(engine)
    won = []
    for run_id in run_ids:
        barrier.wait()
        with unit_of_work(factory) as s:
            if runs.claim_run(s, run_id=run_id, worker=f"p{multiprocessing.current_process().pid}"):
                won.append(run_id)
    out.put(won)
    engine.dispose()


@pytest.mark.slow
def test_exactly_one_of_many_concurrent_claims_wins(db_url: str) -> None:
    """Six processes receive the same job at the same moment, five times over."""
    engine = make_engine(db_url)
    with unit_of_work(make_sessionmaker(engine)) as s:
        run_ids = [_new_run(s, f"contended-{i}") for i in range(5)]
    engine.dispose()
    # Not fork: it would copy locks held by this process's other threads (a child can hang).
    # A fork server, started clean with the store imported once, forks cheap children.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["backend.store.db", "backend.store.runs", "backend.store.metrics"])
    n = 6
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(db_url, run_ids, barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    won = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(r for w in won for r in w) == run_ids  # each run claimed exactly once
    engine = make_engine(db_url)
    with unit_of_work(make_sessionmaker(engine)) as s:
        assert all(runs.get_run(s, run_id=r).attempt == 1 for r in run_ids)  # type: ignore[union-attr]
    engine.dispose()
