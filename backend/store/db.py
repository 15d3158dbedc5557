"""Engine and session factory. One unit of work per request or job: commit once, roll back on error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import Dialect, Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

# True inside a unit of work that only reads (the API sets it for GET and HEAD requests): its
# SQLite transaction begins DEFERRED, so it neither takes nor waits for the write lock. WAL
# readers see a consistent snapshot without it.
sqlite_read_only: ContextVar[bool] = ContextVar("sqlite_read_only", default=False)


def make_engine(url: str, *, busy_timeout_ms: int = 30_000, pool_size: int = 10) -> Engine:
    """An engine for `url` (sqlite:///PATH or postgresql+psycopg://…).

    SQLite: WAL, `busy_timeout_ms` (milliseconds) of waiting on a locked database, foreign keys on,
    write transactions BEGIN IMMEDIATE (reads inside `sqlite_read_only` stay deferred). PostgreSQL:
    pre-ping, `pool_size` connections plus 20 overflow. Raises sqlalchemy.exc.ArgumentError for a URL
    it cannot parse; nothing connects until first use.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
            # Keep as many connections as the API's threadpool runs requests at once: a connection
            # beyond the pool is closed on return and the next one pays connect + pragmas.
            pool_size=max(pool_size, 16),
            max_overflow=32,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets readers and one writer work at once across processes; the busy timeout
            # makes concurrent writers wait instead of failing with "database is locked".
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin_immediate(conn):  # type: ignore[no-untyped-def]
            # Take the write lock at BEGIN so two writers never deadlock upgrading a read lock.
            # Readers skip it: under load they would queue behind each other in the busy handler.
            conn.exec_driver_sql("BEGIN" if sqlite_read_only.get() else "BEGIN IMMEDIATE")

        # pysqlite's own transaction handling must be off for the BEGIN above to be ours.
        @event.listens_for(engine, "connect", insert=True)
        def _sqlite_autocommit_off(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=20)


def driver_marks(dialect: Dialect, n: int) -> str:
    """n positional placeholders in the driver's own style (sqlite3 `?`, psycopg `%s`), for SQL
    handed to the driver directly (exec_driver_sql, or a raw connection)."""
    return ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * n)


def ping(engine: Engine) -> None:
    """One round trip to the database (`SELECT 1`) for the readiness probe; raises the driver's
    error (sqlalchemy.exc.OperationalError and kin) when the database does not answer."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (records are built after it)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed once at the end, rolled back if anything raised."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
