"""SQLite in WAL mode with a busy timeout: several processes writing metric points (and
heartbeats) into one file at once lose nothing and see no 'database is locked'."""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path

import pytest
from sqlalchemy import text

from backend.store import metrics, runs
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from backend.store.metrics import Point
from backend.store.migrate import upgrade
from runspec.spec import RunSpec
from tests.reliability import figures

PROCESSES = 4
BATCHES = 40
POINTS = 50


def _writer(db_url: str, run_id: int, lease: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    errors = []
    engine = make_engine(db_url)
    factory = make_sessionmaker(engine)
    for b in range(BATCHES):
        try:
            with unit_of_work(factory) as s:
                assert runs.heartbeat(s, run_id=run_id, lease=lease, progress=b / BATCHES) == "ok"
                metrics.log_batch(
                    s,
                    run_id=run_id,
                    points=[Point(key, b * POINTS + i, float(i)) for key in ("loss",) for i in range(POINTS)],
                )
            with unit_of_work(factory) as s:  # a reader between writes, as the dashboard polls
                metrics.read_series(s, run_id=run_id, after_step=b * POINTS - 10, max_points=100)
        except Exception:
            errors.append(traceback.format_exc())
    engine.dispose()
    out.put(errors)


@pytest.mark.slow
def test_processes_writing_metrics_at_once(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'busy.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() >= 1000
    leases = []
    with unit_of_work(make_sessionmaker(engine)) as s:
        for i in range(PROCESSES):
            run = runs.create_run(s, spec=RunSpec(name=f"writer-{i}"))
            leases.append((run.id, runs.claim_run(s, run_id=run.id, worker=f"w{i}")))
    engine.dispose()
    # Not fork: it would copy locks held by this process's other threads (a child can hang).
    # A fork server, started clean with the store imported once, forks cheap children.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["backend.store.db", "backend.store.runs", "backend.store.metrics"])
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(db_url, run_id, lease, out)) for run_id, lease in leases]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in out.get(timeout=600)]
    for p in procs:
        p.join(timeout=60)
    assert errors == [], errors[0]
    assert all(p.exitcode == 0 for p in procs)
    engine = make_engine(db_url)
    with unit_of_work(make_sessionmaker(engine)) as s:
        for run_id, _ in leases:
            assert metrics.count_points(s, run_id=run_id) == BATCHES * POINTS
        assert metrics.count_points(s) == PROCESSES * BATCHES * POINTS
    engine.dispose()
    figures.add("SQLite concurrent writer processes", PROCESSES)
    figures.add("SQLite points written concurrently", PROCESSES * BATCHES * POINTS)
