"""Sweeps: one run per grid point (or per random sample), in one experiment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel

from backend.api.deps import Authenticated, QueueDep, SessionDep, SettingsDep
from backend.api.schemas import RunPublic
from backend.core.errors import Invalid
from backend.dispatch.submission import commit_and_enqueue, create_checked, raise_if_problems, reference_problems
from backend.store import runs
from runspec.groups import seed_repeats
from runspec.sweeps import SweepError, SweepIn, expand

router = APIRouter(prefix="/api/sweeps", tags=["sweeps"], dependencies=Authenticated)


class SweepPreview(BaseModel):
    count: int
    points: list[dict[str, Any]]


class SweepCreated(BaseModel):
    experiment: str
    count: int
    data: list[RunPublic]


def _expand(body: SweepIn) -> list[tuple[dict[str, Any], Any]]:
    try:
        return expand(body)
    except SweepError as e:
        raise Invalid.at(e.loc, e.msg) from None


@router.post("/preview")
def preview_sweep(body: SweepIn) -> SweepPreview:
    """How many runs a sweep would create (points × the base's repeats, and a control for each
    with `base.control`), and their grid points."""
    points = _expand(body)
    per_point = body.base.repeats * (2 if body.base.control else 1)
    return SweepPreview(count=len(points) * per_point, points=[p for p, _ in points])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_sweep(body: SweepIn, session: SessionDep, queue: QueueDep, settings: SettingsDep) -> SweepCreated:
    """Create and queue one run per point of the grid."""
    points = _expand(body)
    # Check every point before writing anything: all runs are created, or none.
    for _, spec in points:
        raise_if_problems(reference_problems(session, spec, loc=("body", "base")))
    # a base spec with repeats N: every point N times over consecutive training seeds; with
    # `control`, each of them followed by its own control twin (the same seed, the same point)
    created = [
        run
        for _, spec in points
        for one in seed_repeats(spec)
        for run in create_checked(session, one, max_attempts=settings.max_attempts)
    ]
    commit_and_enqueue(session, queue, created)
    records = runs.get_runs(session, run_ids=[r.id for r in created])
    return SweepCreated(experiment=body.base.experiment, count=len(records), data=[RunPublic.of(r) for r in records])
