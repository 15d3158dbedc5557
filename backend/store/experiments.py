"""Experiments: named groups of runs."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.records import ExperimentRecord


def _record(row: m.Experiment, run_count: int = 0) -> ExperimentRecord:
    return ExperimentRecord(
        id=row.id,
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        run_count=run_count,
    )


def get_or_create_experiment(session: Session, *, name: str, description: str = "") -> ExperimentRecord:
    """The experiment named `name` (1–200 characters), created (flushed, not committed) if missing;
    `description` is used only when it is created.
    """
    row = session.scalar(select(m.Experiment).where(m.Experiment.name == name))
    if row is None:
        row = m.Experiment(name=name, description=description)
        session.add(row)
        session.flush()
    return _record(row)


def create_experiment(session: Session, *, name: str, description: str = "") -> ExperimentRecord | None:
    """None when the name is taken."""
    if session.scalar(select(m.Experiment.id).where(m.Experiment.name == name)) is not None:
        return None
    return get_or_create_experiment(session, name=name, description=description)


def list_experiments(session: Session) -> list[ExperimentRecord]:
    """Every experiment by name, each with its number of runs (one aggregate query)."""
    counts = select(m.Run.experiment_id, func.count(m.Run.id).label("n")).group_by(m.Run.experiment_id).subquery()
    rows = session.execute(
        select(m.Experiment, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.experiment_id == m.Experiment.id)
        .order_by(m.Experiment.name)
    ).all()
    return [_record(row, n) for row, n in rows]


def get_experiment(session: Session, *, experiment_id: int) -> ExperimentRecord | None:
    """The experiment with this id and its number of runs, or None if there is none."""
    row = session.get(m.Experiment, experiment_id)
    if row is None:
        return None
    n = session.scalar(select(func.count(m.Run.id)).where(m.Run.experiment_id == row.id)) or 0
    return _record(row, n)
