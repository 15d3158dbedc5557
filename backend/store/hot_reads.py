"""The reads on every request's path — a token's check and one run — in plain SQL on one DBAPI
connection owned by the API's event loop.

Through the ORM each of these costs 0.3–2 ms of CPU (session, pool checkout, BEGIN, statement
cache key, ORM loading, COMMIT); here a token check is one indexed SELECT of ~20–50 µs. The
results are the same records the ORM path gives (`tests/store/test_hot_reads.py` compares them
field by field on SQLite and PostgreSQL), so callers cannot tell the paths apart.

The connection runs in autocommit: every SELECT is its own snapshot, no transaction stays open
(nothing blocks a migration or VACUUM), and on SQLite in WAL mode a reader never waits for the
writer. A lock serialises the rare callers from other threads; a broken connection (database
restarted) is replaced once per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import Engine

from backend.store.records import RunRecord, TokenRecord
from backend.store.runs import HEADLINE_FORMATS, MAX_ID

T = TypeVar("T")

_RUN_COLUMNS = (
    "id", "experiment_id", "name", "kind", "external", "status", "spec", "spec_hash", "summary",
    "parent_run_id", "attempt", "max_attempts", "lease", "worker", "cancel_requested", "progress",
    "eta_seconds", "error", "log_tail", "tags", "notes", "hardware", "train_seconds",
    "peak_memory_bytes", "created_at", "started_at", "finished_at", "heartbeat_at",
)
_JSON = frozenset({"spec", "log_tail", "tags", "hardware"})
_BOOL = frozenset({"external", "cancel_requested"})
_TIME = frozenset({"created_at", "started_at", "finished_at", "heartbeat_at"})
_RANK = "CASE " + " ".join(f"WHEN format = '{f}' THEN {i}" for i, f in enumerate(HEADLINE_FORMATS)) + \
    f" ELSE {len(HEADLINE_FORMATS)} END"


class HotReads:
    def __init__(self, engine: Engine, *, statement_timeout_ms: int = 5000) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self.statement_timeout_ms = statement_timeout_ms
        p = "?" if self.sqlite else "%s"
        self._token_sql = ("SELECT id, name, prefix, created_at, last_used_at, revoked_at "
                           f"FROM api_tokens WHERE token_hash = {p}")
        # the headline variant joined in: one statement per run read
        self._run_sql = (f"SELECT {', '.join('r.' + c for c in _RUN_COLUMNS)}, e.name, "
                         "v.format, v.accuracy, v.size_bytes, v.latency_p50_ms FROM runs r "
                         "JOIN experiments e ON e.id = r.experiment_id "
                         "LEFT JOIN variants v ON v.id = (SELECT id FROM variants WHERE run_id = r.id "
                         f"ORDER BY {_RANK}, id LIMIT 1) WHERE r.id = {p}")
        self._lock = threading.Lock()
        self._conn: Any = None

    def token(self, token_hash: str) -> TokenRecord | None:
        row = self._query(lambda cur: _one(cur, self._token_sql, (token_hash,)))
        if row is None:
            return None
        tid, name, prefix, created, used, revoked = row
        return TokenRecord(id=tid, name=name, prefix=prefix, created_at=self._time(created),
                           last_used_at=self._time(used), revoked_at=self._time(revoked))

    def run(self, run_id: int) -> RunRecord | None:
        if not 1 <= run_id <= MAX_ID:
            return None

        row = self._query(lambda cur: _one(cur, self._run_sql, (run_id,)))
        if row is None:
            return None
        data: dict[str, Any] = {}
        for col, value in zip(_RUN_COLUMNS, row, strict=False):
            if col in _JSON:
                value = self._json(value)
            elif col in _BOOL:
                value = bool(value)
            elif col in _TIME:
                value = self._time(value)
            data[col] = value
        data["log_tail"] = list(data["log_tail"] or [])
        data["tags"] = list(data["tags"] or [])
        data["hardware"] = dict(data["hardware"] or {})
        n = len(_RUN_COLUMNS)
        headline = None
        if row[n + 1] is not None:
            headline = dict(zip(("format", "accuracy", "size_bytes", "latency_p50_ms"), row[n + 1:], strict=True))
        return RunRecord(experiment=row[n], headline=headline, **data)

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- connection ---------------------------------------------------------------------------

    def _query(self, fn: Callable[[Any], T]) -> T:
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    cur = conn.cursor()
                    try:
                        return fn(cur)
                    finally:
                        cur.close()
                except self.engine.dialect.loaded_dbapi.Error:
                    self._drop()  # the server went away or the connection broke: one new connection
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def _connection(self) -> Any:
        if self._conn is None:
            fairy = self.engine.raw_connection()  # connect events run: SQLite pragmas, autocommit
            conn = fairy.driver_connection
            fairy.detach()  # ours for the process's life, not the pool's
            if not self.sqlite:
                conn.autocommit = True
                with conn.cursor() as cur:  # a slow database must not stall the event loop for long
                    cur.execute(f"SET statement_timeout = {int(self.statement_timeout_ms)}")
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken; nothing to release
                pass

    # -- values: what SQLAlchemy's types would give ---------------------------------------

    def _json(self, value: Any) -> Any:
        return orjson.loads(value) if isinstance(value, str | bytes) else value

    def _time(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite keeps naive UTC text
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _one(cur: Any, sql: str, params: tuple[Any, ...]) -> Any:
    cur.execute(sql, params)
    return cur.fetchone()
