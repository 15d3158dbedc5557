"""The runs list's parallel-coordinates view: spec values and headline figures per run."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from backend.api.deps import Authenticated, SessionDep
from backend.api.schemas import RunPublic
from backend.figures.parcoords import parcoords_table
from backend.store import runs

router = APIRouter(prefix="/api", tags=["runs"], dependencies=Authenticated)

MAX_PARCOORDS_RUNS = 1000


@router.get("/parcoords")
def read_parcoords(
    session: SessionDep,
    experiment: Annotated[str | None, Query(max_length=200)] = None,
    status_: Annotated[
        Literal["queued", "running", "succeeded", "failed", "cancelled"] | None, Query(alias="status")
    ] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=2, le=MAX_PARCOORDS_RUNS)] = 500,
) -> dict[str, Any]:
    """The runs the runs list shows (same filters, newest first, at most `limit`) as parallel
    coordinates: one column per varying spec value, then accuracy, gzip size and latency p90."""
    filters = runs.RunFilter(experiment=experiment, status=status_, tag=tag, q=q)
    records, count = runs.list_runs(session, filters=filters, sort="-created_at", limit=limit)
    table = parcoords_table([RunPublic.of(r).model_dump(mode="json") for r in records])
    return {**table, "count": count, "limit": limit}
