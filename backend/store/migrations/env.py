"""Alembic environment: the URL comes from the caller (backend.store.migrate), never from a file."""

from __future__ import annotations

from alembic import context

from backend.store.db import make_engine
from backend.store.models import Base

config = context.config
_url = config.get_main_option("sqlalchemy.url")
if _url is None:
    raise RuntimeError("migrations need a URL: run them through backend.store.migrate")
url: str = _url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = make_engine(url)
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration rebuilds a SQLite table (copy, drop, rename). With foreign keys on,
        # dropping a parent such as `runs` deletes every child row by ON DELETE CASCADE (its
        # metric points, variants): SQLite's own procedure for schema changes turns them off
        # outside the transaction and checks them afterwards
        # (https://www.sqlite.org/lang_altertable.html#otheralter, steps 1 and 10).
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows whose foreign key names nothing: {broken[:5]}")
    finally:
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
