"""Fixtures shared by every test package: real databases, real Redis, real processes.

Tiers (docs/architecture.md, "Tests"): every test is marked by what it needs, from the fixtures
it uses and the modules it imports, so nobody has to remember to mark it:
- `postgresql`: the PostgreSQL half of a store test (the SQLite half runs everywhere);
- `services`: a Redis or PostgreSQL server, or processes of the service (API, workers);
- `tensorflow`: imports TensorFlow (the engine, the Keras callback);
- `browser`: drives headless Chromium;
- `slow`: many processes or long training (marked by hand).
`make test-fast` (OPTIBOARD_TEST_TIER=fast) runs what needs none of them, with PostgreSQL and
Redis pointed at a closed port, and does not even collect the TensorFlow modules.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import sys
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

FAST = os.environ.get("OPTIBOARD_TEST_TIER") == "fast"
TESTS = Path(__file__).resolve().parent
SERVICE_FIXTURES = {
    "redis_url",
    "pg_database",
    "pg_url",
    "live_stack",
    "private_redis",
    "broker",
    "fault_stack",
    "server",
}
_TF_IMPORTS = re.compile(r"^\s*(import|from)\s+(tensorflow|tf_keras|keras|worker\.engine|optiboard\.keras)\b", re.M)


@functools.cache
def imports_tensorflow(path: Path) -> bool:
    """True if the test module (or its package's conftest) imports TensorFlow at module level."""
    files = [path, *(d / "conftest.py" for d in path.parents if d != TESTS.parent and TESTS in (d, *d.parents))]
    return any(f.is_file() and _TF_IMPORTS.search(f.read_text()) for f in files)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if FAST and collection_path.suffix == ".py" and imports_tensorflow(collection_path):
        return True  # the fast tier never imports TensorFlow, not even to collect
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "postgresql" in callspec.params.values():
            item.add_marker(pytest.mark.postgresql)
            item.add_marker(pytest.mark.services)
        if names & SERVICE_FIXTURES:
            item.add_marker(pytest.mark.services)
        if "chromium" in names:
            item.add_marker(pytest.mark.browser)
        if imports_tensorflow(Path(str(item.path))):
            item.add_marker(pytest.mark.tensorflow)
    if FAST:
        keep = [
            i for i in items if not any(i.get_closest_marker(m) for m in ("services", "tensorflow", "browser", "slow"))
        ]
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if FAST:
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
        assert not loaded, f"the fast tier imported TensorFlow: {loaded[:5]}"


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


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "store.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def migrated_pg_template(pg_database: str) -> Iterator[str]:
    """The session's PostgreSQL database, migrated once; each test's database is a copy of it
    (CREATE DATABASE ... TEMPLATE), so no test pays for the migrations again."""
    url = f"{pg_database}_template"
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(url)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:  # a template must have no sessions
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    yield name
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database on each backend: a copy of the session's migrated template."""
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("migrated_pg_template")
    base = request.getfixturevalue("pg_database")
    schema_db = f"{base}_{secrets.token_hex(3)}"
    name = schema_db.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
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
    def __init__(
        self, api: Api, worker: Worker | None, client: Client, env: dict[str, str], settings: Settings, logs: Path
    ) -> None:
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
    env = stack_env(
        data_dir=data,
        database_url=db,
        redis_url=redis_url,
        OPTIBOARD_REAPER_INTERVAL_S="2",
        OPTIBOARD_HEARTBEAT_TIMEOUT_S="60",
        # one system/ sample a second (default 10 s), so short test jobs have several
        OPTIBOARD_SYSTEM_METRICS_INTERVAL_S="1",
    )
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
