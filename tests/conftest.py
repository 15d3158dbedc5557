"""Fixtures shared by every test package: real databases, real Redis, real processes."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib
from sqlalchemy.orm import Session

from backend.core.settings import Settings
from backend.store.db import make_engine, make_sessionmaker
from backend.store.migrate import upgrade
from tests.stack import Api, Client, Worker, stack_env

PG_ADMIN = os.environ.get("OPTIBOARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_HOST_URL = os.environ.get("OPTIBOARD_TEST_REDIS", "redis://127.0.0.1:6379")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"optiboard_t_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        upgrade(url)
        yield url
        return
    base = request.getfixturevalue("pg_database")
    schema_db = f"{base}_{secrets.token_hex(3)}"
    name = schema_db.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(schema_db)
    yield schema_db
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    engine = make_engine(db_url)
    s = make_sessionmaker(engine)()
    yield s
    s.rollback()
    s.close()
    engine.dispose()


@contextmanager
def reserved_redis_db() -> Iterator[str]:
    """A database number of the machine's real Redis (127.0.0.1:6379) that no other test
    session uses at the same time (reserved atomically in db 0), flushed before and after:
    two sessions' workers must never consume each other's jobs."""
    admin = redis_lib.Redis.from_url(f"{REDIS_HOST_URL}/0")
    for db in range(1, 16):
        key = f"optiboard:test-db:{db}"
        if admin.set(key, os.getpid(), nx=True, ex=3600):
            break
    else:
        raise RuntimeError("all Redis test databases are reserved")
    url = f"{REDIS_HOST_URL}/{db}"
    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
        admin.delete(key)
        admin.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    with reserved_redis_db() as url:
        yield url


def make_token(database_url: str, name: str = "tests") -> str:
    from backend.store import tokens
    from backend.store.db import unit_of_work

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as s:
            _, secret = tokens.create_token(s, name=name)
    finally:
        engine.dispose()
    return secret


class Stack:
    def __init__(self, api: Api, worker: Worker | None, client: Client, env: dict[str, str],
                 settings: Settings, logs: Path) -> None:
        self.api, self.worker, self.client, self.env = api, worker, client, env
        self.settings, self.logs = settings, logs

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def token(self) -> str:
        return self.client.token


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API + one real Celery worker + real Redis (127.0.0.1:6379 db 1) + SQLite, for the session."""
    data = tmp_path_factory.mktemp("live")
    reservation = reserved_redis_db()
    redis_url = reservation.__enter__()
    db = f"sqlite:///{data / 'optiboard.db'}"
    env = stack_env(data_dir=data, database_url=db, redis_url=redis_url,
                    OPTIBOARD_REAPER_INTERVAL_S="2", OPTIBOARD_HEARTBEAT_TIMEOUT_S="60")
    upgrade(db)
    token = make_token(db)
    api = Api(env, log=data / "api.log")
    worker = Worker(env, log=data / "worker.log", name="live@%h")
    client = Client(api.url, token)
    settings = Settings(data_dir=data, database_url=db, redis_url=redis_url)
    yield Stack(api, worker, client, env, settings, data)
    client.close()
    api.stop()
    worker.stop()
    reservation.__exit__(None, None, None)
