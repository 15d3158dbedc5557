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
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
