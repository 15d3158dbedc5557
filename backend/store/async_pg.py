"""A few autocommit psycopg AsyncConnections owned by the API's event loop, for the reads on
every request's path (backend.store.hot_reads) on PostgreSQL.

A blocking query stalls the event loop for the whole round trip — the server's work and two
context switches, a fifth of a GET's time under load. Awaited, the loop serves other requests
meanwhile, and several connections let the server work on some while Python works on others.
A broken connection (database restarted) is replaced, and the query retried once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads


class AsyncPgReads:
    def __init__(self, conninfo: str, *, size: int = 4, statement_timeout_ms: int = 5000) -> None:
        self.conninfo = conninfo
        self.size = size
        self.statement_timeout_ms = statement_timeout_ms
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def fetch_one(self, sql: str, params: tuple[Any, ...]) -> Any:
        self._bind_to_running_loop()
        assert self._slots is not None
        async with self._slots:
            for attempt in (1, 2):
                conn = self._idle.pop() if self._idle else await self._connect()
                try:
                    async with conn.cursor() as cur:
                        await cur.execute(sql, params)
                        row = await cur.fetchone()
                except psycopg.OperationalError:
                    _finish(conn)  # the server went away or the connection broke
                    if attempt == 2:
                        raise
                    continue
                except BaseException:
                    _finish(conn)  # a cancelled or failed query leaves no clean connection to reuse
                    raise
                self._idle.append(conn)
                return row
        raise AssertionError("unreachable")

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            _finish(conn)

    def _bind_to_running_loop(self) -> None:
        # Connections belong to the loop that made them; a test client may run each request on
        # a loop of its own.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self.close()
            self._loop = loop
            self._slots = asyncio.Semaphore(self.size)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        set_json_loads(orjson.loads, conn)  # the run's JSON columns, ~4x faster than json
        # a slow database must not hold a request for long
        await conn.execute(f"SET statement_timeout = {int(self.statement_timeout_ms)}")
        return conn


def _finish(conn: psycopg.AsyncConnection[Any]) -> None:
    """Close without awaiting (works from any loop, or none): the socket is released at once."""
    try:
        conn.pgconn.finish()
    except Exception:  # already broken; nothing to release
        pass
