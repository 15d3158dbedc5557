"""Experiments: named groups of runs."""

from __future__ import annotations

from fastapi import APIRouter, status

from backend.api.deps import Authenticated, SessionDep
from backend.api.schemas import ExperimentIn, ExperimentPublic, ExperimentsPublic
from backend.core.errors import Conflict, NotFound
from backend.store import experiments

router = APIRouter(prefix="/api/experiments", tags=["experiments"], dependencies=Authenticated)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_experiment(body: ExperimentIn, session: SessionDep) -> ExperimentPublic:
    """Create an experiment (runs also create theirs by name)."""
    record = experiments.create_experiment(session, name=body.name, description=body.description)
    if record is None:
        raise Conflict(f"experiment '{body.name}' exists")
    return ExperimentPublic(**record.__dict__)


@router.get("")
def read_experiments(session: SessionDep) -> ExperimentsPublic:
    """All experiments with their run counts."""
    records = experiments.list_experiments(session)
    return ExperimentsPublic(data=[ExperimentPublic(**r.__dict__) for r in records], count=len(records))


@router.get("/{experiment_id}")
def read_experiment(experiment_id: int, session: SessionDep) -> ExperimentPublic:
    """One experiment."""
    record = experiments.get_experiment(session, experiment_id=experiment_id)
    if record is None:
        raise NotFound(f"experiment {experiment_id} not found")
    return ExperimentPublic(**record.__dict__)
