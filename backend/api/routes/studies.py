"""Studies (issue 20): goal-driven searches whose trials are ordinary runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.api.deps import Authenticated, Id, QueueDep, SessionDep
from backend.core.errors import NotFound
from backend.dispatch import studies as study_loop
from backend.dispatch.study_view import study_detail, study_summary, trial_table
from backend.dispatch.submission import commit_and_enqueue
from backend.figures.table import table_csv
from backend.store import studies
from backend.store.models import utcnow
from runspec.spec import SpecError
from runspec.studies import StudySpec

router = APIRouter(prefix="/api/studies", tags=["studies"], dependencies=Authenticated)


class StudiesPublic(BaseModel):
    data: list[dict[str, Any]]
    count: int


class StudyExtend(BaseModel):
    """How much to add to each budget limit (a limit the study does not have stays unlimited)."""

    model_config = ConfigDict(extra="forbid")
    trials: int = Field(default=0, ge=0, le=10_000)
    wall_seconds: float = Field(default=0.0, ge=0, le=90 * 86400)
    worker_minutes: float = Field(default=0.0, ge=0, le=10_000_000)

    @model_validator(mode="after")
    def _adds_something(self) -> StudyExtend:
        if not (self.trials or self.wall_seconds or self.worker_minutes):
            raise SpecError("trials", "extend adds nothing: give trials, wall_seconds or worker_minutes above 0")
        return self


def _nudge(request: Request) -> None:
    loop = getattr(request.app.state, "study_loop", None)
    if loop is not None:
        loop.nudge()


def _read(session: SessionDep, study_id: int, include_infeasible: bool = False) -> dict[str, Any]:
    study = studies.get_study(session, study_id=study_id)
    if study is None:
        raise NotFound(f"study {study_id} does not exist")
    return study_detail(session, study, include_infeasible=include_infeasible, now=utcnow())


@router.post("", status_code=status.HTTP_201_CREATED)
def create_study(body: StudySpec, session: SessionDep, queue: QueueDep, request: Request) -> dict[str, Any]:
    """Create a study; its trials start as workers free up. With `baseline_model_id` (an
    uploaded model) the baseline run measuring it is created and queued too, and the study waits
    for it (`note`); 422 naming the field when the baseline or a listed chain cannot work."""
    study, runs = study_loop.create_study_and_runs(session, body)
    commit_and_enqueue(session, queue, runs)
    created = _read(session, study.id)  # as created (queued): read before the loop is woken
    _nudge(request)
    return created


@router.get("")
def read_studies(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> StudiesPublic:
    """Studies, newest first, with trial counts and budget."""
    rows, count = studies.list_studies(session, limit=limit, offset=offset)
    now = utcnow()
    data = [study_summary(s, studies.list_trials(session, study_id=s.id), now) for s in rows]
    return StudiesPublic(data=data, count=count)


@router.get("/{study_id}")
def read_study(
    study_id: Id,
    session: SessionDep,
    include_infeasible: Annotated[bool, Query(description="also infeasible trials in best and front")] = False,
) -> dict[str, Any]:
    """A study with its trials, hypervolume history, best trials, front and budget."""
    return _read(session, study_id, include_infeasible)


@router.get("/{study_id}/trials.csv", response_class=PlainTextResponse)
def export_trials_csv(
    study_id: Id,
    session: SessionDep,
    include_infeasible: Annotated[
        bool, Query(description="every trial (running, pruned, failed, infeasible), not only feasible ones")
    ] = False,
) -> PlainTextResponse:
    """The study's feasible trials as CSV (all trials with include_infeasible=true): number,
    run, state, constraint metric, worker seconds, each objective, then the recipe's settings."""
    columns, rows = trial_table(_read(session, study_id), include_infeasible=include_infeasible)
    return PlainTextResponse(
        table_csv(rows, columns),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="optiboard-study-{study_id}-trials.csv"'},
    )


@router.post("/{study_id}/pause")
def pause_study(study_id: Id, session: SessionDep) -> dict[str, Any]:
    """No new trials; those in flight finish and are counted."""
    study_loop.pause(session, study_id=study_id)
    return _read(session, study_id)


@router.post("/{study_id}/resume")
def resume_study(study_id: Id, session: SessionDep, request: Request) -> dict[str, Any]:
    """Resume a paused study."""
    study_loop.resume(session, study_id=study_id)
    session.commit()
    _nudge(request)
    return _read(session, study_id)


@router.post("/{study_id}/stop")
def stop_study(study_id: Id, session: SessionDep) -> dict[str, Any]:
    """Stop for good: trials in flight are cancelled."""
    study_loop.stop(session, study_id=study_id)
    return _read(session, study_id)


@router.post("/{study_id}/extend")
def extend_study(study_id: Id, body: StudyExtend, session: SessionDep, request: Request) -> dict[str, Any]:
    """Add trials, wall seconds or worker-minutes to the budget; a finished study runs again."""
    study_loop.extend(
        session,
        study_id=study_id,
        trials=body.trials,
        wall_seconds=body.wall_seconds,
        worker_minutes=body.worker_minutes,
    )
    session.commit()
    _nudge(request)
    return _read(session, study_id)
