"""A real stack for fault injection: a private redis-server (so restarting it touches nobody
else), SQLite, the API (its maintenance loop every second) and one Celery worker with two job
processes, with a short heartbeat timeout so a lost run is noticed within seconds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from backend.store.db import make_engine
from backend.store.migrate import upgrade
from tests.conftest import make_token
from tests.reliability import figures
from tests.reliability.redis_server import RedisServer
from tests.stack import Api, Client, Worker, stack_env

HEARTBEAT_TIMEOUT_S = 12
REAPER_INTERVAL_S = 1


@dataclass
class FaultStack:
    redis: RedisServer
    api: Api
    worker: Worker
    client: Client
    engine: Engine
    data: Path
    db_url: str
    env: dict[str, str]

    def duplicate_points(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT COUNT(*) FROM (SELECT run_id, key, step FROM metric_points "
                        "GROUP BY run_id, key, step HAVING COUNT(*) > 1) d"
                    )
                ).scalar_one()
            )

    def points(self, run_id: int) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(text("SELECT COUNT(*) FROM metric_points WHERE run_id = :r"), {"r": run_id}).scalar_one()
            )

    def worker_log(self) -> str:
        return self.worker.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server with no worker attached: messages stay where the test puts them."""
    server = RedisServer(tmp_path_factory.mktemp("broker"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    data = tmp_path_factory.mktemp("faults")
    redis = RedisServer(data)
    db = f"sqlite:///{data / 'optiboard.db'}"
    upgrade(db)
    env = stack_env(
        data_dir=data,
        database_url=db,
        redis_url=redis.url,
        OPTIBOARD_REAPER_INTERVAL_S=str(REAPER_INTERVAL_S),
        OPTIBOARD_HEARTBEAT_TIMEOUT_S=str(HEARTBEAT_TIMEOUT_S),
        OPTIBOARD_MAX_ATTEMPTS="2",
        OPTIBOARD_WORKER_CONCURRENCY="2",
    )
    api = Api(env, log=data / "api.log")
    worker = Worker(env, log=data / "worker.log", name="faults@%h")
    client = Client(api.url, make_token(db))
    engine = make_engine(db)
    yield FaultStack(redis, api, worker, client, engine, data, db, env)
    client.close()
    worker.stop()
    api.stop()
    redis.stop()
    engine.dispose()


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    figures.terminal_summary(terminalreporter)
