"""Fixtures for the deployment tests: a dedicated Redis database on the local server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

# DB 13 is reserved for tests/deploy so these tests never flush another suite's keys.
DEPLOY_REDIS_DB = 13


@pytest.fixture
def deploy_redis_url() -> Iterator[str]:
    base = os.environ.get("OPTIBOARD_TEST_REDIS", "redis://127.0.0.1:6379")
    url = f"{base.rstrip('/')}/{DEPLOY_REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.ping()  # fail loudly: these tests need the real Redis server
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
