"""Migration 0004 (metric_points keyed by (run, key, step), no id) on a database that already
holds points, on both backends: the points survive up and down, duplicates are still ignored,
the delete trigger still drops a run's summaries, and the migrated schema is what the models
declare."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.command import downgrade
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, text

from backend.store import metrics, models, runs
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from backend.store.experiments import get_or_create_experiment
from backend.store.metrics import Point
from backend.store.migrate import alembic_config, upgrade
from backend.store.models import Base
from runspec.spec import RunSpec
from tests.conftest import PG_ADMIN


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    name = f"optiboard_m_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _points(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text("SELECT run_id, key, step, value, wall_time FROM metric_points ORDER BY run_id, key, step")
            )
        ]


def _count(engine: Engine, table: str, run_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table} WHERE run_id = :r"), {"r": run_id}).scalar_one())


def test_points_survive_the_rekeying_both_ways(empty_url: str) -> None:
    upgrade(empty_url, "0003")
    engine = make_engine(empty_url)
    factory = make_sessionmaker(engine)
    ids = []
    with unit_of_work(factory) as s:  # the store's metric write path works on the old schema too
        experiment = get_or_create_experiment(s, name="e")
        for name in ("a", "b"):
            # The run row as 0003 knew it: only its columns (runs gained some in later revisions).
            spec = RunSpec.model_validate({"name": name, "experiment": "e", "external": True}).model_dump(mode="json")
            run_id = s.execute(
                insert(models.Run)
                .values(experiment_id=experiment.id, name=name, spec=spec, spec_hash=runs.spec_hash(spec))
                .returning(models.Run.id)
            ).scalar_one()
            ids.append(run_id)
            metrics.log_batch(
                s, run_id=run_id, points=[Point(k, i, i / 7, 100.0 + i) for k in ("loss", "acc") for i in range(300)]
            )
    before = _points(engine)
    assert len(before) == 1200

    upgrade(empty_url)
    assert _points(engine) == before
    insp = inspect(engine)
    assert insp.get_pk_constraint("metric_points")["constrained_columns"] == ["run_id", "key", "step"]
    assert "id" not in {c["name"] for c in insp.get_columns("metric_points")}
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'metric_points'")).scalar_one()
        assert "WITHOUT ROWID" in ddl
    with engine.connect() as conn:  # the tables are what the models declare
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []

    with unit_of_work(factory) as s:  # first write still wins; new points land
        metrics.log_batch(s, run_id=ids[0], points=[Point("loss", 5, 99.0), Point("loss", 300, 1.5)])
    after = _points(engine)
    assert len(after) == 1201
    assert (ids[0], "loss", 5, 5 / 7, 105.0) in after
    with unit_of_work(factory) as s:
        assert metrics.count_points(s, run_id=ids[0]) == 601

    assert _count(engine, "metric_blocks", ids[1]) > 0
    with engine.begin() as conn:  # the delete trigger was recreated on the rebuilt table
        conn.execute(text("DELETE FROM metric_points WHERE run_id = :r"), {"r": ids[1]})
    assert _count(engine, "metric_blocks", ids[1]) == 0
    assert _count(engine, "metric_blocks", ids[0]) > 0

    kept = _points(engine)
    engine.dispose()
    downgrade(alembic_config(empty_url), "0003")
    assert _points(engine) == kept
    assert "id" in {c["name"] for c in inspect(engine).get_columns("metric_points")}
    upgrade(empty_url)
    assert _points(engine) == kept
    engine.dispose()
