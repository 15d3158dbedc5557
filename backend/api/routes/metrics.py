"""Metric points: read after a step cursor (downsampled on request), write in batches."""

from __future__ import annotations

import math
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from backend.api.deps import Authenticated, SessionDep, SettingsDep
from backend.api.fast_json import FastJSONRoute
from backend.api.schemas import Accepted, MetricKeysPublic, MetricsPublic, PointIn, PointsIn
from backend.core.errors import Conflict, Invalid, NotFound
from backend.store import metrics, runs
from backend.store.db import unit_of_work
from runspec.vocabulary import MAX_STEP

# Metric batches are the API's largest JSON bodies: parsed with orjson (backend.api.fast_json).
router = APIRouter(prefix="/api/runs", tags=["metrics"], dependencies=Authenticated, route_class=FastJSONRoute)

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _json_values(values: list[float]) -> list[float | str]:
    # JSON has no NaN/Infinity: the contract sends them as strings. Most values are finite, so
    # test them all at C speed first and rewrite only when needed.
    if all(map(math.isfinite, values)):
        return values  # type: ignore[return-value]
    return [v if math.isfinite(v) else ("NaN" if math.isnan(v) else _NON_FINITE[v]) for v in values]


# Most keys one read returns or accepts: 50 series of up to max_points each keep a read under a
# second at the largest max_points, and a chooser shows far fewer at once.
MAX_KEYS_PER_READ = 50


@router.get(
    "/{run_id}/metrics",
    response_model=MetricsPublic,
    responses={422: {"description": f"more than {MAX_KEYS_PER_READ} keys named"}},
)
def read_metrics(
    run_id: int,
    session: SessionDep,
    after_step: Annotated[int, Query(ge=-1, le=MAX_STEP)] = -1,
    keys: Annotated[
        str | None,
        Query(
            max_length=20_000,
            description=(
                f"comma-separated metric keys, at most {MAX_KEYS_PER_READ}; without it, the run's default set "
                "(loss, val_loss, accuracy, val_accuracy when present, then the others in order) up to "
                f"{MAX_KEYS_PER_READ} keys, and `more_keys` says whether it has more"
            ),
        ),
    ] = None,
    max_points: Annotated[int, Query(ge=4, le=100_000)] = 1000,
) -> Response:
    """Points after `after_step`, at most `max_points` per key (bucket minima and maxima kept),
    for at most MAX_KEYS_PER_READ keys, so one read is bounded whatever the run holds."""
    run = runs.get_run(session, run_id=run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    key_list = list(dict.fromkeys(k for k in (keys or "").split(",") if k))
    more_keys = False
    if len(key_list) > MAX_KEYS_PER_READ:
        raise Invalid.at(
            ("query", "keys"),
            f"{len(key_list)} keys named; one read takes at most {MAX_KEYS_PER_READ}",
            kind="too_many_keys",
            ctx={"limit": MAX_KEYS_PER_READ},
        )
    if not key_list:
        key_list, more_keys = metrics.default_metric_keys(session.connection(), run_id=run_id, limit=MAX_KEYS_PER_READ)
    series = (
        metrics.read_series(session, run_id=run_id, after_step=after_step, keys=key_list, max_points=max_points)
        if key_list
        else {}
    )
    last = max((s.steps[-1] for s in series.values() if s.steps), default=after_step)
    # Built and encoded by hand (orjson): validating ~10^5 numbers through pydantic costs more
    # than the query. The shape is MetricsPublic, as documented by response_model.
    body = {
        "run_id": run_id,
        "status": run.status,
        "last_step": last,
        "series": {k: {"steps": s.steps, "values": _json_values(s.values)} for k, s in series.items()},
        "more_keys": more_keys,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/{run_id}/metrics/keys")
def read_metric_keys(
    run_id: int,
    session: SessionDep,
    settings: SettingsDep,
    after: Annotated[str, Query(max_length=200, description="list keys sorted after this one (paging)")] = "",
    limit: Annotated[int, Query(ge=1, le=10_000, description="keys per page")] = 1000,
) -> MetricKeysPublic:
    """The run's metric keys (sorted, paged), without reading any series: one index seek per key.
    Also the default set GET …/metrics returns and the limits."""
    if runs.get_run(session, run_id=run_id) is None:
        raise NotFound(f"run {run_id} not found")
    conn = session.connection()
    page = metrics.list_metric_keys(conn, run_id=run_id, after=after, limit=limit + 1)
    defaults, _ = metrics.default_metric_keys(conn, run_id=run_id, limit=MAX_KEYS_PER_READ)
    return MetricKeysPublic(
        run_id=run_id,
        keys=page[:limit],
        count=min(len(page), limit),
        next_after=page[limit - 1] if len(page) > limit else None,
        default_keys=defaults,
        max_keys_per_run=settings.max_metric_keys_per_run,
        max_keys_per_read=MAX_KEYS_PER_READ,
    )


@router.get("/{run_id}/metrics/times")
def read_metric_times(
    run_id: int,
    session: SessionDep,
    key: Annotated[str, Query(min_length=1, max_length=200, description="the metric whose points give the times")],
    max_points: Annotated[int, Query(ge=2, le=10_000)] = 500,
) -> dict[str, Any]:
    """When the run reached each step: `steps` and `wall_times` (seconds since the Unix epoch)
    of `key`'s points, thinned to `max_points`; charts interpolate their time axes from them."""
    if runs.get_run(session, run_id=run_id) is None:
        raise NotFound(f"run {run_id} not found")
    steps, wall = metrics.read_wall_times(session, run_id=run_id, key=key, max_points=max_points)
    return {"run_id": run_id, "key": key, "steps": steps, "wall_times": wall}


@router.post("/{run_id}/metrics", response_model=Accepted)
async def log_metrics(
    run_id: int,
    body: PointsIn,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=64,
            pattern=r"^[A-Za-z0-9_\-]+$",
            description="one key per batch (e.g. a UUID): a resend of a batch whose answer was lost "
            "is answered as the first time and writes nothing",
        ),
    ] = None,
) -> Response:
    """Log a batch of points into a running external run. A point whose (key, step) the run
    already holds is ignored (first write wins) and counted in `duplicates`; `accepted` counts
    the points stored. With an `Idempotency-Key` seen before on this run, nothing is written
    and the first answer comes back with `replayed: true`. 409 when the run is not a running
    external run (the detail says why)."""
    # An async endpoint with one threadpool hop for the whole unit of work: a session dependency
    # and a sync endpoint took three hops per batch (profiled: ~0.5 ms of a 1000-point batch).
    max_keys = request.app.state.settings.max_metric_keys_per_run
    try:
        answer = await run_in_threadpool(
            _log_metrics, request.app.state.sessionmaker, run_id, body["points"], idempotency_key, max_keys
        )
    except metrics.TooManyMetricKeys as e:  # nothing of the batch was written
        raise Invalid.at(
            ("body", "points"),
            str(e),
            kind="too_many_metric_keys",
            ctx={"limit": e.limit, "stored": e.stored, "new": e.new},
        ) from None
    return Response(orjson.dumps(answer), media_type="application/json")


def _log_metrics(
    factory: sessionmaker[Session], run_id: int, body: list[PointIn], batch_key: str | None, max_keys: int
) -> dict[str, int | bool]:
    with unit_of_work(factory) as session:
        if not runs.heartbeat_external(session, run_id=run_id):  # one UPDATE checks and marks it
            raise (Conflict if runs.get_run(session, run_id=run_id) else NotFound)(_refusal(session, run_id))
        if batch_key is not None:
            seen = metrics.claim_batch_key(session, run_id=run_id, batch_key=batch_key)
            if seen is not None:
                return {"accepted": seen[0], "duplicates": seen[1], "replayed": True}
        # plain tuples in Point's field order (log_batch unpacks them; no named tuple per point)
        stored = metrics.log_batch(
            session,
            run_id=run_id,
            max_keys=max_keys,
            points=(
                (p["key"], p["step"], math.nan if p["value"] is None else p["value"], p.get("wall_time")) for p in body
            ),
        )
        answer: dict[str, int | bool] = {"accepted": stored, "duplicates": len(body) - stored, "replayed": False}
        if batch_key is not None:
            metrics.record_batch_key(
                session, run_id=run_id, batch_key=batch_key, accepted=stored, duplicates=len(body) - stored
            )
        return answer


def _refusal(session: Session, run_id: int) -> str:
    """Why a run takes no metrics: absent, trained by a worker, or ended (with its reason)."""
    run = runs.get_run(session, run_id=run_id)
    if run is None:
        return f"run {run_id} not found"
    if not run.external:
        return f"run {run_id} is trained by a worker; only external runs take metrics over the API"
    why = f" ({run.error})" if run.error else ""
    return (
        f"run {run_id} is {run.status}{why}; an ended run never changes: log into a new external "
        "run (the Keras callback does this itself when asked to resume an ended run)"
    )
