"""The reads on every request's path — a token's check and one run, or both in one statement —
in plain SQL, owned by the API's event loop: on SQLite one DBAPI connection, on PostgreSQL a few
awaited psycopg connections (backend.store.async_pg), so the loop serves other requests while
the server works.

Through the ORM each of these costs 0.3–2 ms of CPU (session, pool checkout, BEGIN, statement
cache key, ORM loading, COMMIT); here a token check is one indexed SELECT of ~20–50 µs. The
results are the same records the ORM path gives (`tests/store/test_hot_reads.py` compares them
field by field on SQLite and PostgreSQL), so callers cannot tell the paths apart.

The connections run in autocommit: every SELECT is its own snapshot, no transaction stays open
(nothing blocks a migration or VACUUM), and on SQLite in WAL mode a reader never waits for the
writer. A broken connection (database restarted) is replaced once per call.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from backend.store.async_pg import AsyncPgReads
from backend.store.db import driver_marks
from backend.store.records import RunRecord, TokenRecord
from runspec.vocabulary import HEADLINE_FIELDS, HEADLINE_FORMATS, MAX_ID

_RUN_COLUMNS = (
    "id",
    "experiment_id",
    "name",
    "kind",
    "external",
    "status",
    "spec",
    "spec_hash",
    "summary",
    "parent_run_id",
    "retry_of_run_id",
    "control_of_run_id",
    "attempt",
    "max_attempts",
    "lease",
    "worker",
    "cancel_requested",
    "progress",
    "eta_seconds",
    "error",
    "log_tail",
    "tags",
    "notes",
    "hardware",
    "train_seconds",
    "peak_memory_bytes",
    "final_metrics",
    "created_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "group_key",
    "study_id",
    "trial_number",
)
_TOKEN_COLUMNS = ("id", "name", "prefix", "created_at", "last_used_at", "revoked_at")
_JSON = frozenset({"spec", "log_tail", "tags", "hardware", "final_metrics"})
_BOOL = frozenset({"external", "cancel_requested"})
_TIME = frozenset({"created_at", "started_at", "finished_at", "heartbeat_at"})
_RANK = (
    "CASE "
    + " ".join(f"WHEN format = '{f}' THEN {i}" for i, f in enumerate(HEADLINE_FORMATS))
    + f" ELSE {len(HEADLINE_FORMATS)} END"
)


class HotReads:
    def __init__(self, engine: Engine, *, statement_timeout_ms: int = 5000) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        p = driver_marks(engine.dialect, 1)
        self._token_sql = f"SELECT {', '.join(_TOKEN_COLUMNS)} FROM api_tokens WHERE token_hash = {p}"
        # One statement per run read, with the headline variant and the request's token joined
        # in: always one row, whose token and run halves are NULL when absent. On PostgreSQL a
        # round trip (client work, a wait, the server's) is most of a request's cost.
        self._token_and_run_sql = (
            f"SELECT {', '.join('t.' + c for c in _TOKEN_COLUMNS)}, "
            f"{', '.join('r.' + c for c in _RUN_COLUMNS)}, "
            "(SELECT COUNT(*) FROM runs g WHERE g.group_key = r.group_key), e.name, "
            f"{', '.join('v.' + c for c in HEADLINE_FIELDS)}, "
            # the run's control (the reverse of control_of_run_id), through its index
            "(SELECT MAX(c.id) FROM runs c WHERE c.control_of_run_id = r.id) FROM (SELECT 1 AS one) AS x "
            f"LEFT JOIN api_tokens t ON t.token_hash = {p} "
            f"LEFT JOIN runs r ON r.id = {p} "
            "LEFT JOIN experiments e ON e.id = r.experiment_id "
            "LEFT JOIN variants v ON v.id = (SELECT id FROM variants WHERE run_id = r.id "
            f"ORDER BY {_RANK}, id LIMIT 1)"
        )
        self._lock = threading.Lock()
        self._conn: Any = None  # SQLite
        self._pg = (
            None
            if self.sqlite
            else AsyncPgReads(
                engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
                statement_timeout_ms=statement_timeout_ms,
            )
        )

    async def token(self, token_hash: str) -> TokenRecord | None:
        return self._token(await self._fetch_one(self._token_sql, (token_hash,)))

    async def run(self, run_id: int) -> RunRecord | None:
        return (await self.token_and_run(None, run_id))[1]

    async def token_and_run(self, token_hash: str | None, run_id: int) -> tuple[TokenRecord | None, RunRecord | None]:
        """The token with this hash and the run with this id, each None when absent: one
        statement (a token is checked and a run read in one round trip)."""
        if not 1 <= run_id <= MAX_ID:
            run_id = 0  # names nothing; the token is still looked up
        row = await self._fetch_one(self._token_and_run_sql, (token_hash, run_id))
        t = len(_TOKEN_COLUMNS)
        return self._token(row[:t] if row[0] is not None else None), self._run(row[t:])

    def _token(self, row: Any) -> TokenRecord | None:
        if row is None:
            return None
        tid, name, prefix, created, used, revoked = row
        created_at = self._time(created)
        assert created_at is not None  # NOT NULL column
        return TokenRecord(
            id=tid,
            name=name,
            prefix=prefix,
            created_at=created_at,
            last_used_at=self._time(used),
            revoked_at=self._time(revoked),
        )

    def _run(self, row: Any) -> RunRecord | None:
        if row[0] is None:
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
        h = len(HEADLINE_FIELDS)
        if row[n + 2] is not None:
            headline = dict(zip(HEADLINE_FIELDS, row[n + 2 : n + 2 + h], strict=True))
        return RunRecord(
            experiment=row[n + 1],
            headline=headline,
            group_size=int(row[n] or 1),
            control_run_id=row[n + 2 + h],
            **data,
        )

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
        with self._lock:
            self._drop()

    # -- connection ---------------------------------------------------------------------------

    async def _fetch_one(self, sql: str, params: tuple[Any, ...]) -> Any:
        if self._pg is not None:
            return await self._pg.fetch_one(sql, params)
        return self._sqlite_one(sql, params)  # ~10-80 µs, nothing to wait for: no await

    def _sqlite_one(self, sql: str, params: tuple[Any, ...]) -> Any:
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    cur = conn.cursor()
                    try:
                        cur.execute(sql, params)
                        return cur.fetchone()
                    finally:
                        cur.close()
                except self.engine.dialect.loaded_dbapi.Error:
                    self._drop()  # the file went away or the connection broke: one new connection
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def _connection(self) -> Any:
        if self._conn is None:
            fairy = self.engine.raw_connection()  # connect events run: SQLite pragmas, autocommit
            self._conn = fairy.driver_connection
            fairy.detach()  # ours for the process's life, not the pool's
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
