"""`optiboard up`: embedded Redis, the API and one worker, supervised from one terminal.

Each part is its own process (the API never imports TensorFlow; the worker's job process does).
Ctrl-C (or SIGTERM) stops them in order: API, worker (warm shutdown), Redis. A Redis that dies
is restarted from its append-only file (RedisSupervisor); an API or worker that dies stops the
whole service, saying which and how.
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


def _exit_text(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"


class Restarts:
    """How often a supervised process may die and be started again: at most `max_restarts`
    times within `window_s` seconds. More than that, and something is wrong that a restart will
    not fix (a full disk, a port taken, a broken install): `up` stops everything, loudly."""

    def __init__(self, *, max_restarts: int = 3, window_s: float = 60.0) -> None:
        self.max_restarts, self.window_s = max_restarts, window_s
        self.times: list[float] = []

    def allow(self) -> bool:
        """Record a death; True if the process may be started again."""
        now = time.monotonic()
        self.times = [t for t in self.times if now - t < self.window_s]
        if len(self.times) >= self.max_restarts:
            return False
        self.times.append(now)
        return True

    @property
    def deaths(self) -> int:
        return len(self.times) + 1


class RedisSupervisor:
    """Keeps the embedded Redis alive under `optiboard up`.

    When the server dies (killed, crashed, out of memory) it is started again on the same socket
    from the same append-only file, so the queued jobs are still there (up to the last second of
    writes, appendfsync everysec; the API's dispatcher re-sends any job the broker lost) and the
    API and the worker reconnect by themselves; the terminal says so. If it dies more than
    `max_restarts` times within `window_s`, something is wrong that a restart will not fix (a
    full disk, a broken AOF): `check` returns False and `up` stops everything, loudly.
    """

    def __init__(self, redis: EmbeddedRedis, *, echo=print, max_restarts: int = 3, window_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]  # noqa: T201
        self.redis, self.echo = redis, echo
        self.restarts = Restarts(max_restarts=max_restarts, window_s=window_s)

    def check(self) -> bool:
        """Restart Redis if it died (reaping it); False when it must not be restarted again."""
        proc = self.redis.proc
        if proc is None or proc.poll() is None:
            return True
        now = time.monotonic()
        why = _exit_text(proc.returncode)
        if not self.restarts.allow():
            window = self.restarts.window_s
            log.error("embedded Redis exited with %s, %d times in %.0f s; stopping", why, self.restarts.deaths, window)
            self.echo(
                f"optiboard: the embedded Redis (pid {proc.pid}) exited with {why}, "
                f"{self.restarts.deaths} times in {window:.0f} s; see {self.redis.dir / 'redis.log'}. "
                "Stopping everything."
            )
            return False
        log.error("embedded Redis (pid %s) exited with %s; restarting it", proc.pid, why)
        self.echo(
            f"optiboard: the embedded Redis (pid {proc.pid}) exited with {why}; restarting it "
            "(its append-only file keeps the queued jobs)."
        )
        try:
            self.redis.start()
        except RuntimeError as e:
            died = self.redis.proc
            if died is not None and died.poll() is not None:
                # It died again while starting (killed, crashed): that is one more death, which
                # the next check counts against the restart policy like any other.
                log.error("embedded Redis (pid %s) exited while starting: %s", died.pid, e)
                return True
            log.error("embedded Redis did not restart: %s", e)
            self.echo(f"optiboard: the embedded Redis did not restart ({e}). Stopping everything.")
            return False
        self.echo(
            f"optiboard: the embedded Redis is back (pid {self.redis.proc.pid if self.redis.proc else '?'}) "
            f"after {time.monotonic() - now:.1f} s; the API and the worker reconnect by themselves."
        )
        return True


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env)


def up(settings: Settings, *, echo=print) -> int:  # type: ignore[no-untyped-def]  # noqa: T201
    settings.ensure_dirs()
    env = dict(os.environ)
    redis = None
    if not settings.redis_url:
        redis = EmbeddedRedis(settings.data_dir)
        env["OPTIBOARD_REDIS_URL"] = redis.start()
    env.update(
        {
            "OPTIBOARD_DATA_DIR": str(settings.data_dir),
            "OPTIBOARD_DATABASE_URL": settings.db_url,
            "OPTIBOARD_HOST": settings.host,
            "OPTIBOARD_PORT": str(settings.port),
        }
    )
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
        roles = (("API", ["api"]), ("worker", ["worker"]))
        children.extend(_spawn(args, env) for _, args in roles)
        restarts = [Restarts(), Restarts()]
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        echo(
            "\n  optiboard is running. Open the dashboard (this link signs you in):\n"
            f"      http://{host}:{settings.port}/login?token={token}\n"
            f"  API docs: http://{host}:{settings.port}/docs   data: {settings.data_dir}\n"
            "  Press Ctrl-C to stop.\n"
        )
        supervisor = RedisSupervisor(redis, echo=echo) if redis else None
        while not stopping:
            for i, child in enumerate(children):
                if stopping or child.poll() is None:
                    continue
                (role, args), why = roles[i], _exit_text(child.returncode)
                if not restarts[i].allow():
                    deaths, window = restarts[i].deaths, restarts[i].window_s
                    log.error("the %s exited with %s, %d times in %.0f s; stopping", role, why, deaths, window)
                    echo(
                        f"optiboard: the {role} (pid {child.pid}) exited with {why}, {deaths} times "
                        f"in {window:.0f} s; a restart will not fix it (see the lines above). Stopping everything."
                    )
                    code, stopping = child.returncode or 1, True
                    continue
                log.error("the %s (pid %s) exited with %s; restarting it", role, child.pid, why)
                echo(
                    f"optiboard: the {role} (pid {child.pid}) exited with {why}; restarting it."
                    + (
                        " A run it held is requeued once its heartbeat is older than "
                        f"{settings.heartbeat_timeout_s:.0f} s (OPTIBOARD_HEARTBEAT_TIMEOUT_S)."
                        if role == "worker"
                        else ""
                    )
                )
                children[i] = _spawn(args, env)
            if supervisor and not stopping and not supervisor.check():
                code, stopping = 1, True
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
