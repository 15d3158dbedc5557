from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.core.settings import Settings
from backend.store.migrate import upgrade
from tests.conftest import make_token


@pytest.fixture
def app_settings(tmp_path: Path, redis_url: str) -> Settings:
    db = f"sqlite:///{tmp_path / 'api.db'}"
    upgrade(db)
    return Settings(data_dir=tmp_path, database_url=db, redis_url=redis_url, max_upload_bytes=200_000)


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    """The real app (real SQLite, real Redis broker) in-process, signed in with a real token."""
    token = make_token(app_settings.db_url)
    with TestClient(create_app(app_settings, maintenance=False)) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c
