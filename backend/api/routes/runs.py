"""Runs: submit, list, read, edit, cancel, retry, delete, optimize."""

from __future__ import annotations

import shutil
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response, status
from pydantic import ValidationError

from backend.api.deps import (
    Authenticated,
    Id,
    QueueDep,
    SessionDep,
    SettingsDep,
    accepted_token,
    get_hot_reads,
    presented_token,
)
from backend.api.schemas import (
    FinishRequest,
    LogsPublic,
    OptimizeRequest,
    RunCreated,
    RunPublic,
    RunsPublic,
    RunUpdate,
    public_run,
)
from backend.core.errors import Conflict, Invalid, NotFound
from backend.dispatch.submission import commit_and_enqueue, create_checked, create_repeats
from backend.store import runs, tokens
from backend.store.artifacts import removable_run_dir
from backend.store.records import RunRecord
from runspec.spec import RunSpec
from runspec.vocabulary import MAX_ID

router = APIRouter(prefix="/api/runs", tags=["runs"], dependencies=Authenticated)
# Routes that check the token themselves, in the statement that reads their data (see read_run).
hot_router = APIRouter(prefix="/api/runs", tags=["runs"])

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


def _spec(data: dict[str, Any], *, loc: tuple[str, ...]) -> RunSpec:
    """A spec built by the server from a stored run and the request: invalid means 422, not 500."""
    try:
        return RunSpec.model_validate(data)
    except ValidationError as e:
        raise Invalid([((*loc, *err["loc"]), err["msg"]) for err in e.errors()]) from None


def _found(run: RunRecord | None, run_id: int) -> RunRecord:
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return run


@router.post("", status_code=status.HTTP_201_CREATED)
def create_run(spec: RunSpec, session: SessionDep, queue: QueueDep, settings: SettingsDep) -> RunCreated:
    """Submit a run (with `repeats` N: N runs over consecutive seeds, one seed group; with `control`, each with its same-budget control); each is queued and sent to a worker once stored. Answers the first run and `group_run_ids`."""
    created = create_repeats(session, spec, max_attempts=settings.max_attempts)
    commit_and_enqueue(session, queue, created)
    first = _found(runs.get_run(session, run_id=created[0].id), created[0].id)
    # the controls are not members of the group: each run's is its `control_run_id`
    members = [r.id for r in created if r.control_of_run_id is None]
    return RunCreated(**public_run(first), group_run_ids=members)


@router.get("")
def read_runs(
    session: SessionDep,
    experiment: Annotated[str | None, Query(max_length=200)] = None,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    parent: Annotated[int | None, Query(ge=1, le=MAX_ID, description="only the optimize runs of this run")] = None,
    retry_of: Annotated[int | None, Query(ge=1, le=MAX_ID, description="only the retries of this run")] = None,
    control_of: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only the same-budget control of this run")
    ] = None,
    group: Annotated[
        str | None,
        Query(pattern=r"^[0-9a-f]{64}$", description="only the runs of this seed group (a run's group_key)"),
    ] = None,
    study_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="only the trials of this study")] = None,
    sort: Annotated[
        str,
        Query(
            pattern=r"^-?(created_at|name|status|id|finished_at|progress|accuracy|size_bytes|latency_p50_ms|duration)$"
        ),
    ] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> RunsPublic:
    """List runs, newest first, filtered by experiment, status, tag, text, parent, retry and study."""
    filters = runs.RunFilter(
        experiment=experiment,
        status=status_,
        tag=tag,
        q=q,
        parent_run_id=parent,
        retry_of_run_id=retry_of,
        control_of_run_id=control_of,
        group_key=group,
        study_id=study_id,
    )
    records, count = runs.list_runs(session, filters=filters, sort=sort, limit=limit, offset=offset)
    return RunsPublic(data=[RunPublic.of(r) for r in records], count=count)


@hot_router.get("/{run_id}", response_model=RunPublic)
async def read_run(run_id: Id, request: Request) -> Response:
    """Read one run."""
    # The dashboard polls this: the token is checked and the run read in one statement on the
    # event loop's connection (no threadpool hop; on PostgreSQL one round trip instead of two),
    # which is why this route is on a router without the Authenticated dependency.
    reads = get_hot_reads(request)
    presented = presented_token(request)
    if presented is None:  # authentication is off
        run = await reads.run(run_id)
    else:
        token, from_cookie = presented
        record, run = await tokens.verify_token_reading_run(reads, token=token, run_id=run_id)
        accepted_token(request, record, from_cookie)
    return Response(
        orjson.dumps(public_run(_found(run, run_id)), option=orjson.OPT_UTC_Z), media_type="application/json"
    )


@router.patch("/{run_id}")
def update_run(run_id: Id, body: RunUpdate, session: SessionDep) -> RunPublic:
    """Rename a run or edit its tags and notes."""
    updated = runs.update_run(session, run_id=run_id, name=body.name, tags=body.tags, notes=body.notes)
    return RunPublic.of(_found(updated, run_id))


@router.delete("/{run_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_run(run_id: Id, session: SessionDep, settings: SettingsDep) -> Response:
    """Delete a finished run with its metrics, variants and files."""
    run = _found(runs.get_run(session, run_id=run_id), run_id)
    if not run.terminal:
        raise Conflict(f"run {run_id} is {run.status}: cancel it first")
    runs.delete_run(session, run_id=run_id)
    session.commit()
    run_dir = removable_run_dir(settings.artifacts, run_id)  # never follows a planted symlink
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{run_id}/cancel")
def cancel_run(run_id: Id, session: SessionDep) -> RunPublic:
    """Cancel a queued run at once, or ask a running one to stop at its next batch."""
    run = _found(runs.get_run(session, run_id=run_id), run_id)
    if run.terminal:
        raise Conflict(f"run {run_id} is already {run.status}")
    return RunPublic.of(_found(runs.request_cancel(session, run_id=run_id), run_id))


@router.post("/{run_id}/retry", status_code=status.HTTP_201_CREATED)
def retry_run(run_id: Id, session: SessionDep, queue: QueueDep, settings: SettingsDep) -> RunPublic:
    """Submit a failed or cancelled run again, as a new run with the same spec."""
    run = _found(runs.get_run(session, run_id=run_id), run_id)
    if run.status not in ("failed", "cancelled") or run.external:
        raise Conflict(f"run {run_id} is {run.status}: only failed or cancelled runs can be retried")
    spec = _spec({**run.spec, "name": f"{run.name} (retry)"[:200]}, loc=("stored spec",))
    created = create_checked(
        session,
        spec,
        max_attempts=settings.max_attempts,
        retry_of_run_id=run_id,
        control_of_run_id=run.control_of_run_id,  # a control's retry is its run's control now
    )
    commit_and_enqueue(session, queue, created)  # a run that asked for a control gets a new one
    new = created[0]
    return RunPublic.of(_found(runs.get_run(session, run_id=new.id), new.id))


@router.post("/{run_id}/optimize", status_code=status.HTTP_201_CREATED)
def optimize_run(
    run_id: Id, body: OptimizeRequest, session: SessionDep, queue: QueueDep, settings: SettingsDep
) -> RunPublic:
    """Launch post-training quantization of this run's model as a new optimize run."""
    parent = _found(runs.get_run(session, run_id=run_id), run_id)
    base = _spec(parent.spec, loc=("stored spec",))
    spec = _spec(
        {
            **base.model_dump(mode="json"),
            "name": body.name or f"{parent.name} → {'+'.join(body.exports)}"[:200],
            "kind": "optimize",
            "parent_run_id": run_id,
            "techniques": [],
            "exports": body.exports,
            "external": False,
            "control": False,  # post-training exports have no technique to control for
        },
        loc=("body",),
    )
    created = create_checked(session, spec, max_attempts=settings.max_attempts)
    commit_and_enqueue(session, queue, created)
    new = created[0]
    return RunPublic.of(_found(runs.get_run(session, run_id=new.id), new.id))


@router.get("/{run_id}/logs")
def read_logs(run_id: Id, session: SessionDep) -> LogsPublic:
    """The run's log tail."""
    return LogsPublic(lines=_found(runs.get_run(session, run_id=run_id), run_id).log_tail)


@router.post("/{run_id}/finish")
def finish_external_run(run_id: Id, body: FinishRequest, session: SessionDep) -> RunPublic:
    """End an external run (one logged by an outside script) with a terminal status."""
    run = _found(runs.get_run(session, run_id=run_id), run_id)
    if not run.external:
        raise Conflict(f"run {run_id} is run by a worker; use cancel")
    if not runs.finish_run(session, run_id=run_id, lease=None, status=body.status, error=body.error):
        raise Conflict(f"run {run_id} is already {run.status}")
    return RunPublic.of(_found(runs.get_run(session, run_id=run_id), run_id))
