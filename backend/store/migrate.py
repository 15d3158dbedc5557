"""Schema migrations through Alembic, driven from code (`optiboard migrate`, `optiboard up`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic Config for `url` with the migrations of this package (no alembic.ini)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrates the database at `url` to `revision` (default: the newest). Idempotent; raises
    Alembic's CommandError for an unknown revision and the driver's error if the database is
    unreachable.
    """
    command.upgrade(alembic_config(url), revision)


def current_head() -> str:
    """The newest migration's revision id (what `upgrade()` reaches)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head
