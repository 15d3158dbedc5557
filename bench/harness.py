"""Shared by the bench scripts: start the real stack (the same commands a user runs), describe
the machine, take medians. Run every script from the repository root with the project venv,
e.g. `.venv/bin/python bench/vs_mlflow.py`."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.store.db import make_engine, make_sessionmaker, unit_of_work  # noqa: E402
from backend.store.migrate import upgrade  # noqa: E402
from tests.stack import Api, Worker, stack_env  # noqa: E402
from worker.engine.hardware import describe  # noqa: E402

PG_ADMIN = os.environ.get("OPTIBOARD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("OPTIBOARD_BENCH_REDIS", "redis://127.0.0.1:6379/9")


def machine() -> str:
    hw = describe(gpus=[])  # the one hardware description (worker.engine.hardware)
    mem = (hw["memory_bytes"] or 0) / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cal_wall, cal_cpu = calibration()
    return (
        f"{hw['cpu']}, {hw['cpu_count']} cores, {mem:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {hw['python']}, SQLite {sqlite3.sqlite_version}; "
        f"load average at start {load} (the machine is shared with other jobs); "
        f"calibration sum(range(10**7)): {cal_wall:.2f} s wall, {cal_cpu:.2f} s CPU "
        f"(about 0.1 s on an idle modern core)"
    )


def calibration() -> tuple[float, float]:
    """How slow this machine is right now, in one number anyone can compare."""
    t, c = time.perf_counter(), time.process_time()
    sum(range(10**7))
    return time.perf_counter() - t, time.process_time() - c


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def make_token(database_url: str) -> str:
    from backend.store import tokens

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as s:
            _, secret = tokens.create_token(s, name="bench")
    finally:
        engine.dispose()
    return secret


def fresh_pg_database(name: str) -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}"


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Stack:
    api: Api
    worker: Worker | None
    token: str
    db_url: str
    data: Path

    @property
    def url(self) -> str:
        return self.api.url

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def stack(data: Path, *, db_url: str | None = None, worker: bool = False, **env_extra: str) -> Iterator[Stack]:
    """The API (one uvicorn process) and optionally one Celery worker, on a migrated database."""
    import redis

    data.mkdir(parents=True, exist_ok=True)
    db_url = db_url or f"sqlite:///{data / 'optiboard.db'}"
    upgrade(db_url)
    token = make_token(db_url)
    redis.Redis.from_url(REDIS).flushdb()
    env = stack_env(data_dir=data, database_url=db_url, redis_url=REDIS, **env_extra)
    api = Api(env, log=data / "api.log")
    w = Worker(env, log=data / "worker.log", name="bench@%h") if worker else None
    try:
        yield Stack(api, w, token, db_url, data)
    finally:
        api.stop()
        if w:
            w.stop()


def git_rev() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
            ).stdout.strip()
            + " (+ working tree)"
        )
    except (OSError, subprocess.CalledProcessError):
        return "?"
