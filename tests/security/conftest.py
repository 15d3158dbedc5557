"""The API in-process (the real app from create_app, real SQLite/PostgreSQL, a private real
Redis as broker, no worker) with a real token: what the security tests poke at."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.core.settings import Settings
from tests.conftest import make_token
from tests.reliability import figures
from tests.reliability.redis_server import RedisServer


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-sec"))
    yield server
    server.stop()


@dataclass
class AppUnderTest:
    app: FastAPI
    client: TestClient  # unauthenticated
    token: str
    settings: Settings
    db_url: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def build_app(db_url: str, redis_url: str, data_dir: Path, **overrides: object) -> tuple[FastAPI, Settings]:
    settings = Settings(data_dir=data_dir, database_url=db_url, redis_url=redis_url, **overrides)  # type: ignore[arg-type]
    return create_app(settings, maintenance=False), settings


@pytest.fixture
def api(db_url: str, private_redis: RedisServer, tmp_path: Path) -> Iterator[AppUnderTest]:
    app, settings = build_app(db_url, private_redis.url, tmp_path / "data")
    token = make_token(db_url)
    with TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as client:
        yield AppUnderTest(app, client, token, settings, db_url)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    figures.terminal_summary(terminalreporter)
