"""Migration 0011 back-fills runs.group_key from each stored spec, on both backends, and goes
down and up again; the migrated schema is what the models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.command import downgrade
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, text

from backend.store import models, runs
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from backend.store.experiments import get_or_create_experiment
from backend.store.migrate import alembic_config, upgrade
from backend.store.models import Base
from runspec.groups import group_key
from runspec.spec import RunSpec
from tests.store.test_migrations import empty_url  # noqa: F401  (the fixture: an empty database per backend)


def test_existing_runs_are_grouped_by_their_stored_spec(empty_url: str) -> None:  # noqa: F811
    upgrade(empty_url, "0010")
    engine = make_engine(empty_url)
    specs = {
        "seed0": {"name": "a", "training": {"seed": 0}},
        "seed1": {"name": "b", "training": {"seed": 1}, "tags": ["t"]},
        "wider": {"name": "c", "model": {"width_multiplier": 1.5}},
    }
    ids = {}
    with unit_of_work(make_sessionmaker(engine)) as s:
        experiment = get_or_create_experiment(s, name="e")
        for label, fields in specs.items():
            spec = RunSpec.model_validate(fields).model_dump(mode="json")
            del spec["repeats"]  # stored before the field existed
            ids[label] = s.execute(
                insert(models.Run)
                .values(experiment_id=experiment.id, name=label, spec=spec, spec_hash=runs.spec_hash(spec))
                .returning(models.Run.id)
            ).scalar_one()
    upgrade(empty_url)
    with engine.connect() as conn:
        keys = dict(conn.execute(text("SELECT name, group_key FROM runs")).all())
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert keys["seed0"] == keys["seed1"] != keys["wider"]
    assert keys["seed0"] == group_key(RunSpec.model_validate(specs["seed0"]))  # as a new run gets it
    assert diff == []
    assert "ix_runs_group_key" in {i["name"] for i in inspect(engine).get_indexes("runs")}
    engine.dispose()
    downgrade(alembic_config(empty_url), "0010")
    assert "group_key" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    upgrade(empty_url)
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT name, group_key FROM runs")).all()) == keys
    engine.dispose()
