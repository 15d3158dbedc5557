"""The compare query: 100 runs x 4 metrics x 10,000 steps (4 million points) read back as
downsampled series (at most 1,000 points each, bucket minima and maxima kept), on SQLite and on
PostgreSQL, timed as the server does it (backend.store.metrics.read_series_many in-process):
first while the runs are running (read from the block summaries), then once they have finished
(read from the digests built at the finish).

The points are seeded through the one write path (metrics.log_batch: executemany on SQLite, COPY
on PostgreSQL), which also gives the bulk ingestion rate of the store. The SQLite file is kept
(`--keep`) for bench/memory.py, which serves the same data through the API.

    .venv/bin/python bench/compare_query.py [--backends sqlite,postgresql] [--runs 100]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

from harness import PG_ADMIN, REPO, drop_pg_database, fresh_pg_database, machine, median  # type: ignore[import-not-found]
from sqlalchemy import text

from backend.store import metrics, runs
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from backend.store.metrics import reads as metric_reads
from backend.store.migrate import upgrade
from runspec.spec import RunSpec

KEYS = ("loss", "val_loss", "accuracy", "lr")
SQLITE_DIR = Path("/tmp/ob-bench-compare")


def pg_url(name: str) -> str:
    return f"{PG_ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://')}/{name}"


def pg_seeded(url: str, n_runs: int) -> bool:
    try:
        engine = make_engine(url)
        with engine.connect() as c:
            return c.exec_driver_sql("SELECT count(*) FROM runs").scalar() == n_runs
    except Exception:  # no such database yet
        return False


statements: list[tuple[str, dict[str, Any]]] = []
_driver_rows = metric_reads._rows


def _recording_rows(conn: Any, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    statements.append((sql, dict(params)))
    return _driver_rows(conn, sql, params)


metric_reads._rows = _recording_rows  # the bench records the statements to EXPLAIN them


def pg_execution_s(session: Any, stmts: list[tuple[str, dict[str, Any]]]) -> float:
    """PostgreSQL's own execution time of the statements (EXPLAIN ANALYZE), without the
    client-side fetch and assembly that the wall time includes."""
    total = 0.0
    for sql, params in stmts:
        plan = _driver_rows(session.connection(), "EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        total += plan[0][0][0]["Execution Time"] / 1000
    return total


def spike_step(run_index: int) -> int:
    return 1234 + 37 * run_index


def seed(url: str, *, n_runs: int, steps: int) -> tuple[list[int], float]:
    factory = make_sessionmaker(make_engine(url))
    ids: list[int] = []
    with unit_of_work(factory) as s:
        for i in range(n_runs):
            ids.append(
                runs.create_run(
                    s, spec=RunSpec(name=f"cmp-{i}", experiment="compare-bench", external=True), max_attempts=1
                ).id
            )
    rng = random.Random(0)
    total = 0
    t = time.perf_counter()
    for i, rid in enumerate(ids):
        with unit_of_work(factory) as s:
            for k, key in enumerate(KEYS):
                base = [2.0 * math.exp(-st / 3000) + 0.05 * rng.random() + k for st in range(steps)]
                if key == "loss":  # a spike up and one down per run: the downsampling must keep both
                    base[spike_step(i)] = 50.0
                    base[spike_step(i) + 500] = -50.0
                pts = [metrics.Point(key, st, v, 0.0) for st, v in enumerate(base)]
                total += metrics.log_batch(s, run_id=rid, points=pts)
    return ids, total / (time.perf_counter() - t)


def check(result: dict[int, dict[str, Any]], ids: list[int], steps: int) -> int:
    points = 0
    for i, rid in enumerate(ids):
        series = result[rid]
        assert sorted(series) == sorted(KEYS), series.keys()
        for key, s in series.items():
            assert 0 < len(s.steps) <= 1000, (rid, key, len(s.steps))
            assert s.steps[0] == 0 and s.steps[-1] == steps - 1
            points += len(s.steps)
        pairs = dict(zip(series["loss"].steps, series["loss"].values, strict=True))
        assert pairs.get(spike_step(i)) == 50.0 and pairs.get(spike_step(i) + 500) == -50.0
    return points


def bench_backend(name: str, *, n_runs: int, steps: int, repeats: int, keep: bool) -> dict[str, Any]:
    if name == "sqlite":
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        db = SQLITE_DIR / f"compare-{n_runs}x{steps}.db"
        url = f"sqlite:///{db}"
        reuse = keep and db.exists()
        if not reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
    else:
        url = pg_url("optiboard_bench_compare")
        reuse = keep and pg_seeded(url, n_runs)
        if not reuse:
            url = fresh_pg_database("optiboard_bench_compare")
    out: dict[str, Any] = {"backend": name}
    try:
        if reuse:
            factory = make_sessionmaker(make_engine(url))
            with unit_of_work(factory) as s:
                ids = [
                    r.id
                    for r in runs.list_runs(
                        s, filters=runs.RunFilter(experiment="compare-bench"), sort="id", limit=n_runs, offset=0
                    )[0]
                ]
            out["seed_points_per_s"] = None
        else:
            upgrade(url)
            ids, pps = seed(url, n_runs=n_runs, steps=steps)
            out["seed_points_per_s"] = pps
            if name == "postgresql":  # what autovacuum would do soon after such a load
                with make_engine(url).connect() as c:
                    c.exec_driver_sql("ANALYZE")
                    c.commit()
        upgrade(url)  # a kept seed from before migration 0003 gets the digests table
        factory = make_sessionmaker(make_engine(url))
        # Runs still running are read from their block summaries; finished runs from their
        # digests (built when a run ends). Both are measured: first the blocks (the digests are
        # deleted inside the read's own transaction, which is rolled back), then the digests.
        with unit_of_work(factory) as s:
            running = [r.id for r in runs.get_runs(s, run_ids=ids) if r.status == "running"]
        t = time.perf_counter()
        for rid in running:
            with unit_of_work(factory) as s:
                runs.finish_run(s, run_id=rid, lease=None, status="succeeded")
        if running:
            out["finish_and_digest_ms_per_run"] = 1000 * (time.perf_counter() - t) / len(running)
        for path in ("blocks", "digests"):
            times, cpu, server = [], [], []
            for _ in range(repeats):
                s = factory()
                try:
                    if path == "blocks":
                        s.execute(text("DELETE FROM metric_digests"))
                    statements.clear()
                    t, c = time.perf_counter(), time.process_time()
                    result = metrics.read_series_many(s, run_ids=ids, keys=list(KEYS), max_points=1000)
                    times.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
                    if name == "postgresql":
                        server.append(pg_execution_s(s, list(statements)))
                finally:
                    s.rollback()
                    s.close()
            res = out.setdefault(path, {})
            res["process_cpu_ms_median"] = 1000 * median(cpu)
            if server:
                res["pg_server_execution_ms_median"] = 1000 * median(server)
            res["points_returned"] = check(result, ids, steps)
            res["series"] = sum(len(v) for v in result.values())
            res["query_ms_median"] = 1000 * median(times)
            res["query_ms_all"] = [round(1000 * x, 1) for x in times]
        out["url"] = url if name == "sqlite" else "postgresql database optiboard_bench_compare"
        out["reused_seed"] = reuse
    finally:
        if name == "postgresql" and not keep:
            drop_pg_database("optiboard_bench_compare")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the seeded databases, and reuse them when already seeded")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "compare_query.json")
    args = ap.parse_args()
    res: dict[str, Any] = {
        "machine": machine(),
        "runs": args.runs,
        "steps": args.steps,
        "keys": list(KEYS),
        "points": args.runs * args.steps * len(KEYS),
    }
    for b in args.backends.split(","):
        res[b] = bench_backend(b, n_runs=args.runs, steps=args.steps, repeats=args.repeats, keep=args.keep)
        print(json.dumps(res[b]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
