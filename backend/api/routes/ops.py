"""Operations: Prometheus metrics and the list of online workers."""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any

from celery import Celery
from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from backend import __version__
from backend.api.deps import Authenticated, QueueDep, SessionDep
from backend.dispatch.queue import QUEUE_FOR_KIND, JobQueue
from backend.store import metrics, run_stats, runs
from runspec.vocabulary import RUN_STATUSES

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"], dependencies=Authenticated)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Celery's broadcast waits this long for replies from workers it does not know about yet.
DEFAULT_PING_TIMEOUT_S = 1.0


# --- /metrics ------------------------------------------------------------------------------


def _labels(**labels: str) -> str:
    if not labels:
        return ""

    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Exposition:
    """Prometheus text format 0.0.4, written by hand: a dependency for ~40 lines is not worth it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        self.lines.append(f"{name}{_labels(**labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_metrics(session: Session, queue: JobQueue) -> str:
    out = _Exposition()
    out.family("optiboard_info", "gauge", "Version of the API serving these metrics.")
    out.sample("optiboard_info", 1, version=__version__)

    by_status = runs.count_by_status(session)
    out.family("optiboard_runs", "gauge", "Runs by status.")
    for status in RUN_STATUSES:
        out.sample("optiboard_runs", by_status.get(status, 0), status=status)

    try:
        lengths = queue.queue_lengths()
        broker_up = 1
    except Exception:  # the scrape still reports the database side
        log.warning("broker unavailable for /metrics", exc_info=True)
        lengths, broker_up = {}, 0
    out.family("optiboard_broker_up", "gauge", "1 if the broker (Redis) answered this scrape.")
    out.sample("optiboard_broker_up", broker_up)
    out.family("optiboard_queue_length", "gauge", "Jobs waiting in the broker, per queue.")
    for name in sorted(set(QUEUE_FOR_KIND.values()) | set(lengths)):
        if name in lengths:
            out.sample("optiboard_queue_length", lengths[name], queue=name)

    histogram = run_stats.run_duration_histogram(session)
    name = "optiboard_run_duration_seconds"
    out.family(name, "histogram", "Wall time from start to end of finished runs.")
    for (kind, status), h in sorted(histogram.items()):
        for bound, cumulative in zip(run_stats.DURATION_BUCKETS, h["buckets"], strict=True):
            out.sample(f"{name}_bucket", cumulative, kind=kind, status=status, le=_number(bound))
        out.sample(f"{name}_bucket", h["count"], kind=kind, status=status, le="+Inf")
        out.sample(f"{name}_sum", h["sum"], kind=kind, status=status)
        out.sample(f"{name}_count", h["count"], kind=kind, status=status)

    out.family("optiboard_metric_points", "gauge", "Metric points stored for all runs.")
    out.sample("optiboard_metric_points", metrics.count_points(session))
    return out.text()


@router.get("/metrics", response_class=Response)
def read_metrics(session: SessionDep, queue: QueueDep) -> Response:
    """Prometheus metrics: queue lengths, runs by status, run durations, metric points."""
    return Response(render_metrics(session, queue), media_type=PROMETHEUS_CONTENT_TYPE)


# --- /api/workers --------------------------------------------------------------------------


class ActiveJob(BaseModel):
    task_id: str
    run_id: int | None = None
    started_at: float | None = Field(default=None, description="Unix time the job started")


class WorkerPublic(BaseModel):
    name: str
    queues: list[str] = []
    concurrency: int | None = None
    pid: int | None = None
    active: list[ActiveJob] = []
    hardware: dict[str, Any] = {}
    device: str | None = Field(default=None, description="the device label of a measuring worker (--device)")


class WorkersPublic(BaseModel):
    data: list[WorkerPublic]
    count: int
    queues: dict[str, int] = Field(description="jobs waiting in the broker, per queue")


def _merge(replies: list[dict[str, Any]] | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for reply in replies or []:
        merged.update(reply)
    return merged


def _run_id(args: Any) -> int | None:
    try:
        return int(args[0]) if isinstance(args, list | tuple) and args else None
    except (TypeError, ValueError):
        return None


def inspect_workers(app: Celery, *, timeout_s: float = DEFAULT_PING_TIMEOUT_S) -> list[WorkerPublic]:
    """Online workers: a ping finds them, then each question waits only for those nodes."""
    online = sorted(_merge(app.control.ping(timeout=timeout_s)))
    if not online:
        return []
    ask = app.control.inspect(destination=online, timeout=timeout_s, limit=len(online))
    active = ask.active() or {}
    queues = ask.active_queues() or {}
    stats = ask.stats() or {}
    hardware = _merge(
        app.control.broadcast(
            "optiboard_hardware",
            destination=online,
            reply=True,
            timeout=timeout_s,
            limit=len(online),
        )
    )
    workers = []
    for name in online:
        pool = (stats.get(name) or {}).get("pool") or {}
        jobs = [
            ActiveJob(
                task_id=str(t.get("id")),
                run_id=_run_id(t.get("args")),
                started_at=t.get("time_start"),
            )
            for t in active.get(name) or []
        ]
        workers.append(
            WorkerPublic(
                name=name,
                queues=sorted(q.get("name", "") for q in queues.get(name) or []),
                concurrency=pool.get("max-concurrency"),
                pid=(stats.get(name) or {}).get("pid"),
                active=jobs,
                hardware=hardware.get(name) or {},
                device=(hardware.get(name) or {}).get("device"),
            )
        )
    return workers


@router.get("/api/workers")
def read_workers(
    queue: QueueDep,
    timeout: Annotated[
        float, Query(gt=0, le=10, description="seconds to wait for workers to answer")
    ] = DEFAULT_PING_TIMEOUT_S,
) -> WorkersPublic:
    """Online workers: their queues, hardware and running jobs, and the broker's queue lengths."""
    try:
        lengths = queue.queue_lengths()
        workers = inspect_workers(queue.app, timeout_s=timeout)
    except Exception as e:
        log.warning("broker unavailable for /api/workers", exc_info=True)
        raise HTTPException(503, "broker unavailable") from e
    return WorkersPublic(data=workers, count=len(workers), queues=lengths)
