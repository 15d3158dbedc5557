"""A real API server (uvicorn via the CLI, SQLite, a private redis-server, no worker) with a
real token, for tests that must meet the API the way an attacker does: over a socket."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi.routing import APIRoute

from backend.store.migrate import upgrade
from tests.conftest import make_token
from tests.reliability.redis_server import RedisServer
from tests.stack import Api, stack_env


@dataclass
class LiveApi:
    api: Api
    token: str
    data: Path
    db: str

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.auth, timeout=60)

    def log_text(self) -> str:
        return self.api.log.read_text(errors="replace")


def live_api(base: Path, **env: str) -> Iterator[LiveApi]:
    """Start the API under `base`, yield it, stop it (for a module-scoped fixture)."""
    data = base / "data"
    data.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{data / 'optiboard.db'}"
    upgrade(db)
    token = make_token(db)
    redis = RedisServer(base)
    api = Api(stack_env(data_dir=data, database_url=db, redis_url=redis.url, **env), log=base / "api.log")
    try:
        yield LiveApi(api, token, data, db)
    finally:
        api.stop()
        redis.stop()


def state_changing_routes() -> list[tuple[str, str]]:
    """(method, path with every parameter set to 1) for every non-GET route of the app, the
    pages' and the hidden ones included, read from the routers the app is built from."""
    from backend.api.app import ROUTERS

    out = []
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                for method in sorted(route.methods - {"GET", "HEAD", "OPTIONS"}):
                    out.append((method, re.sub(r"\{[^}]+\}", "1", route.path)))
    return out
