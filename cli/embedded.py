"""`optiboard up`: embedded Redis, the API and one worker, supervised from one terminal.

Each part is its own process (the API never imports TensorFlow; the worker's job process does).
Ctrl-C (or SIGTERM) stops them in order: API, worker (warm shutdown), Redis.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from backend.core.settings import Settings
from backend.store import tokens
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from backend.store.migrate import upgrade
from cli.embedded_redis import EmbeddedRedis

log = logging.getLogger(__name__)


def dashboard_token(settings: Settings) -> str:
    """The sign-in token kept (mode 0600) in the data directory, created on first start."""
    path = settings.data_dir / "token"
    engine = make_engine(settings.db_url)
    factory = make_sessionmaker(engine)
    try:
        if path.exists():
            token = path.read_text().strip()
            with unit_of_work(factory) as session:
                if tokens.verify_token(session, token=token):
                    return token
        with unit_of_work(factory) as session:
            _, token = tokens.create_token(session, name="dashboard (optiboard up)")
        path.touch(mode=0o600)
        path.write_text(token + "\n")
        return token
    finally:
        engine.dispose()


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env)


def up(settings: Settings, *, echo=print) -> int:  # type: ignore[no-untyped-def]  # noqa: T201
    settings.ensure_dirs()
    env = dict(os.environ)
    redis = None
    if not settings.redis_url:
        redis = EmbeddedRedis(settings.data_dir)
        env["OPTIBOARD_REDIS_URL"] = redis.start()
    env.update({"OPTIBOARD_DATA_DIR": str(settings.data_dir), "OPTIBOARD_DATABASE_URL": settings.db_url,
                "OPTIBOARD_HOST": settings.host, "OPTIBOARD_PORT": str(settings.port)})
    upgrade(settings.db_url)
    token = dashboard_token(settings)
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        children.append(_spawn(["api"], env))
        children.append(_spawn(["worker"], env))
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        echo(
            "\n  optiboard is running. Open the dashboard (this link signs you in):\n"
            f"      http://{host}:{settings.port}/login?token={token}\n"
            f"  API docs: http://{host}:{settings.port}/docs   data: {settings.data_dir}\n"
            "  Press Ctrl-C to stop.\n"
        )
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    log.error("a child process exited with %s; stopping", child.returncode)
                    code = child.returncode or 1
                    stopping = True
            time.sleep(0.3)
    finally:
        for child in children:  # API first, then the worker (finishes or hands back its job)
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
        if redis:
            redis.stop()
        echo("optiboard stopped.")
    return code


