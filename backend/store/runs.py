"""Runs and their state machine: queued → running → succeeded | failed | cancelled.

Every transition is one conditional UPDATE, so a terminal state never changes and only the
attempt holding the lease may move a running run (a late "succeeded" cannot overwrite
"cancelled"; a reaped zombie cannot finish a run it no longer owns).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, Table, bindparam, case, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.experiments import get_or_create_experiment
from backend.store.metrics import build_digest, last_metric_values
from backend.store.records import RunRecord, run_record
from runspec.groups import group_key
from runspec.spec import RunSpec, techniques_summary
from runspec.vocabulary import HEADLINE_FIELDS, HEADLINE_FORMATS, LOGGED_ACCURACY_KEYS, MAX_ID, TERMINAL_STATUSES

LOG_TAIL_LINES = 200
SORTABLE = {
    "created_at": m.Run.created_at,
    "name": m.Run.name,
    "status": m.Run.status,
    "id": m.Run.id,
    "finished_at": m.Run.finished_at,
    "progress": m.Run.progress,
}


def spec_hash(spec: dict[str, Any]) -> str:
    """SHA-256 (64 hex characters) of the spec's canonical JSON (sorted keys, no spaces): equal
    specs hash equal, whatever their key order.
    """
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def create_run(
    session: Session,
    *,
    spec: RunSpec,
    max_attempts: int = 2,
    retry_of_run_id: int | None = None,
    control_of_run_id: int | None = None,
) -> RunRecord:
    """A new run for a validated spec, flushed (not committed): `queued` with attempt 0, or
    `running` with attempt 1 for an external run; its experiment is created if missing.
    `max_attempts` is how many worker attempts the reaper allows before failing it;
    `retry_of_run_id` the failed or cancelled run it retries, `control_of_run_id` the run it is
    the same-budget control of (each pair links both ways).
    """
    data = spec.model_dump(mode="json")
    exp = get_or_create_experiment(session, name=spec.experiment)
    now = m.utcnow()
    row = m.Run(
        experiment_id=exp.id,
        name=spec.name,
        kind=spec.kind,
        external=spec.external,
        status="running" if spec.external else "queued",
        spec=data,
        spec_hash=spec_hash(data),
        group_key=group_key(spec),
        summary=techniques_summary(spec)[:300],
        parent_run_id=spec.parent_run_id,
        retry_of_run_id=retry_of_run_id,
        control_of_run_id=control_of_run_id,
        attempt=1 if spec.external else 0,
        max_attempts=max_attempts,
        tags=list(spec.tags),
        notes=spec.notes,
        created_at=now,
        log_tail=[],
        hardware={},
        started_at=now if spec.external else None,
        heartbeat_at=now if spec.external else None,
        worker="external" if spec.external else None,
    )
    session.add(row)
    session.flush()
    return run_record(row, exp.name)


def _headline_rank() -> Any:
    """Which variant speaks for a run: the first of HEADLINE_FORMATS it has (lowest rank)."""
    return case(*[(m.Variant.format == f, i) for i, f in enumerate(HEADLINE_FORMATS)], else_=len(HEADLINE_FORMATS))


def _headlines(session: Session, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not run_ids:
        return {}
    rank = _headline_rank()
    rows = session.execute(
        select(m.Variant.run_id, *(getattr(m.Variant, f) for f in HEADLINE_FIELDS), rank)
        .where(m.Variant.run_id.in_(run_ids))
        .order_by(m.Variant.run_id, rank, m.Variant.id)
    ).all()
    out: dict[int, dict[str, Any]] = {}
    for run_id, *values, _ in rows:
        out.setdefault(run_id, dict(zip(HEADLINE_FIELDS, values, strict=True)))
    return out


def _headline_value(column: Any) -> Any:
    return (
        select(column)
        .where(m.Variant.run_id == m.Run.id)
        .order_by(_headline_rank(), m.Variant.id)
        .limit(1)
        .scalar_subquery()
    )


def _json_number(column: Any, key: str, *, sqlite: bool) -> Any:
    """`column[key]` as a float when it is a JSON number, else NULL: the strings "Infinity" and
    "-Infinity" a final metric may hold are no number (SQLite would cast them to 0.0), as
    logged_headline skips them."""
    kind = func.json_type(column, f'$."{key}"') if sqlite else func.json_typeof(column[key])
    numbers = ("real", "integer") if sqlite else ("number",)
    return case((kind.in_(numbers), column[key].as_float()))


def _sort_column(session: Session, key: str) -> Any:
    if key in SORTABLE:
        return SORTABLE[key]
    if key == "accuracy":
        # An external run without a measured model sorts by its logged accuracy (its headline,
        # runspec.vocabulary.logged_headline), like the list shows it.
        sqlite = session.get_bind().dialect.name == "sqlite"
        logged = func.coalesce(*(_json_number(m.Run.final_metrics, k, sqlite=sqlite) for k in LOGGED_ACCURACY_KEYS))
        return func.coalesce(_headline_value(m.Variant.accuracy), case((m.Run.external.is_(True), logged)))
    if key in ("size_bytes", "latency_p50_ms"):
        return _headline_value(getattr(m.Variant, key))
    if key == "duration":
        if session.get_bind().dialect.name == "postgresql":
            return func.extract("epoch", m.Run.finished_at - m.Run.started_at)
        return func.julianday(m.Run.finished_at) - func.julianday(m.Run.started_at)
    return m.Run.created_at


def _controls(session: Session, run_ids: Sequence[int]) -> dict[int, int]:
    """run id → the id of its control run (the newest, should there be several: a failed
    control's retry), for these runs."""
    if not run_ids:
        return {}
    rows = session.execute(
        select(m.Run.control_of_run_id, func.max(m.Run.id))
        .where(m.Run.control_of_run_id.in_(run_ids))
        .group_by(m.Run.control_of_run_id)
    ).all()
    return {int(of): int(control) for of, control in rows if of is not None}


def group_sizes(session: Session, *, keys: Sequence[str]) -> dict[str, int]:
    """How many runs each seed group holds ({group_key: count}; keys without runs are left out)."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    rows = session.execute(
        select(m.Run.group_key, func.count()).where(m.Run.group_key.in_(keys)).group_by(m.Run.group_key)
    ).all()
    return {k: int(n) for k, n in rows}


def _records(session: Session, rows: Sequence[tuple[m.Run, str]]) -> list[RunRecord]:
    ids = [r.id for r, _ in rows]
    heads, controls = _headlines(session, ids), _controls(session, ids)
    sizes = group_sizes(session, keys=[r.group_key for r, _ in rows])
    return [
        run_record(r, exp, heads.get(r.id), group_size=sizes.get(r.group_key, 1), control_run_id=controls.get(r.id))
        for r, exp in rows
    ]


# Run ids are INTEGER (32-bit on PostgreSQL): a larger one names no run and must not reach SQL.


def get_run(session: Session, *, run_id: int) -> RunRecord | None:
    """The run with this id (and its headline variant), or None; ids outside 1..MAX_ID are None
    without a query.
    """
    if not 1 <= run_id <= MAX_ID:
        return None
    row = session.execute(select(m.Run, m.Experiment.name).join(m.Experiment).where(m.Run.id == run_id)).first()
    return _records(session, [tuple(row)])[0] if row else None  # type: ignore[list-item]


def get_runs(session: Session, *, run_ids: Sequence[int]) -> list[RunRecord]:
    """The runs with these ids, in the order given; unknown ids are left out."""
    run_ids = [i for i in run_ids if 1 <= i <= MAX_ID]
    rows = session.execute(select(m.Run, m.Experiment.name).join(m.Experiment).where(m.Run.id.in_(run_ids))).all()
    by_id = {r.id: (r, e) for r, e in rows}
    return _records(session, [by_id[i] for i in run_ids if i in by_id])


@dataclass(frozen=True)
class RunFilter:
    """Filters of the runs list; `q` and `tag` match literally (LIKE wildcards escaped)."""

    experiment: str | None = None
    status: str | None = None
    tag: str | None = None
    q: str | None = None
    parent_run_id: int | None = None  # the optimize runs made from this run
    retry_of_run_id: int | None = None  # the retries of this run
    control_of_run_id: int | None = None  # the control of this run
    group_key: str | None = None  # the members of this seed group
    study_id: int | None = None  # the trials of this study


def list_runs(
    session: Session,
    *,
    filters: RunFilter = RunFilter(),
    sort: str = "-created_at",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[RunRecord], int]:
    """One page of runs matching `filters` and the total count, sorted by `sort` (a SORTABLE key,
    a headline figure `accuracy`/`size_bytes`/`latency_p50_ms`, or `duration`; `-` for
    descending, nulls last; any other key sorts by creation time).
    """
    query = select(m.Run, m.Experiment.name).join(m.Experiment)
    if filters.experiment:
        query = query.where(m.Experiment.name == filters.experiment)
    if filters.parent_run_id is not None:
        query = query.where(m.Run.parent_run_id == filters.parent_run_id)
    if filters.retry_of_run_id is not None:
        query = query.where(m.Run.retry_of_run_id == filters.retry_of_run_id)
    if filters.control_of_run_id is not None:
        query = query.where(m.Run.control_of_run_id == filters.control_of_run_id)
    if filters.group_key is not None:
        query = query.where(m.Run.group_key == filters.group_key)
    if filters.study_id is not None:
        query = query.where(m.Run.study_id == filters.study_id)
    if filters.status:
        query = query.where(m.Run.status == filters.status)
    if filters.tag:
        # JSON list stored as text on both backends: match the quoted element.
        # autoescape: %, _ and the escape character in a tag match themselves (LIKE ... ESCAPE '/').
        query = query.where(cast(m.Run.tags, String).contains(json.dumps(filters.tag), autoescape=True))
    if filters.q:
        # User text is literal: `contains(..., autoescape=True)` escapes % and _ (and '/', the
        # escape character) and adds ESCAPE '/', the same on SQLite and PostgreSQL.
        q = filters.q.lower()
        query = query.where(
            or_(
                func.lower(m.Run.name).contains(q, autoescape=True),
                func.lower(m.Run.summary).contains(q, autoescape=True),
                func.lower(m.Run.notes).contains(q, autoescape=True),
            )
        )
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    column = _sort_column(session, sort.lstrip("-"))
    order = (column.desc() if sort.startswith("-") else column.asc()).nulls_last()
    rows = session.execute(query.order_by(order, m.Run.id.desc()).limit(limit).offset(offset)).all()
    return _records(session, [tuple(r) for r in rows]), count  # type: ignore[misc]


def update_run(
    session: Session,
    *,
    run_id: int,
    name: str | None = None,
    tags: list[str] | None = None,
    notes: str | None = None,
) -> RunRecord | None:
    """Renames, retags or annotates a run (None leaves a field as it is); None if there is no run."""
    row = session.get(m.Run, run_id)
    if row is None:
        return None
    if name is not None:
        row.name = name
    if tags is not None:
        row.tags = list(tags)
    if notes is not None:
        row.notes = notes
    session.flush()
    return get_run(session, run_id=run_id)


def delete_run(session: Session, *, run_id: int) -> bool:
    """Deletes a terminal run with its points and variants (the caller removes artifact files)."""
    result = session.execute(delete(m.Run).where(m.Run.id == run_id, m.Run.status.in_(TERMINAL_STATUSES)))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def request_cancel(session: Session, *, run_id: int) -> RunRecord | None:
    """Queued (and external) runs are cancelled at once; a running one stops at its next batch.
    The run's same-budget control (runs.control_of_run_id = run_id) goes with it: a control
    without its run measures nothing anyone asked for (a retry of the run gets a new one)."""
    now = m.utcnow()
    for these, error in (
        (m.Run.id == run_id, "cancelled by user"),
        (m.Run.control_of_run_id == run_id, f"cancelled with run {run_id}, whose control it is"),
    ):
        session.execute(
            update(m.Run)
            .where(these, or_(m.Run.status == "queued", (m.Run.status == "running") & m.Run.external))
            .values(status="cancelled", finished_at=now, cancel_requested=True, lease=None, error=error)
        )
        session.execute(update(m.Run).where(these, m.Run.status == "running").values(cancel_requested=True))
    session.flush()
    return get_run(session, run_id=run_id)


def claim_run(session: Session, *, run_id: int, worker: str, hardware: dict[str, Any] | None = None) -> str | None:
    """Take the run's lease for a new attempt. None when it is not queued (duplicate delivery,
    cancelled, or another attempt active): the caller must then do nothing."""
    lease = secrets.token_hex(16)
    now = m.utcnow()
    result = session.execute(
        update(m.Run)
        .where(m.Run.id == run_id, m.Run.status == "queued", m.Run.cancel_requested.is_(False))
        .values(
            status="running",
            lease=lease,
            worker=worker,
            attempt=m.Run.attempt + 1,
            started_at=now,
            heartbeat_at=now,
            progress=0.0,
            error=None,
            hardware=hardware or {},
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    # A new attempt starts clean: points and variants of a lost attempt would mix with its own.
    session.execute(delete(m.MetricPoint).where(m.MetricPoint.run_id == run_id))
    session.execute(delete(m.Variant).where(m.Variant.run_id == run_id))
    session.flush()
    return lease


def heartbeat(
    session: Session,
    *,
    run_id: int,
    lease: str,
    progress: float | None = None,
    eta_seconds: float | None = None,
) -> str:
    """'ok', 'cancel' (the user asked to stop) or 'lost' (the lease is gone: stop, write nothing)."""
    values: dict[str, Any] = {"heartbeat_at": m.utcnow()}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, progress))
        values["eta_seconds"] = eta_seconds
    # One statement per flush of every running job: the UPDATE returns the cancel flag.
    cancel = session.execute(
        update(m.Run)
        .where(m.Run.id == run_id, m.Run.lease == lease, m.Run.status == "running")
        .values(**values)
        .returning(m.Run.cancel_requested)
    ).scalar()
    if cancel is None:
        return "lost"
    return "cancel" if cancel else "ok"


def finish_run(
    session: Session,
    *,
    run_id: int,
    lease: str | None,
    status: str,
    error: str | None = None,
    train_seconds: float | None = None,
    peak_memory_bytes: int | None = None,
) -> bool:
    """Moves a running run to a terminal state; False if it was not ours to move."""
    assert status in TERMINAL_STATUSES
    cond = [m.Run.id == run_id, m.Run.status == "running"]
    cond.append(m.Run.lease == lease if lease is not None else m.Run.external.is_(True))
    values: dict[str, Any] = {"status": status, "finished_at": m.utcnow(), "error": error, "lease": None}
    if status == "succeeded":
        values["progress"] = 1.0
        values["eta_seconds"] = 0.0
    if train_seconds is not None:
        values["train_seconds"] = train_seconds
    if peak_memory_bytes is not None:
        values["peak_memory_bytes"] = peak_memory_bytes
    done = False
    if status == "succeeded":
        # A cancel the user asked for wins over a success that arrives after it: the run ends
        # cancelled, keeping what it stored.
        result = session.execute(update(m.Run).where(*cond, m.Run.cancel_requested.is_(False)).values(**values))
        done = bool(result.rowcount)  # type: ignore[attr-defined]
        if not done:
            values.update(status="cancelled", error="cancelled by user (the job had finished its work)")
            values.pop("progress")
            values.pop("eta_seconds")
    if not done:
        result = session.execute(update(m.Run).where(*cond).values(**values))
        done = bool(result.rowcount)  # type: ignore[attr-defined]
    if done:
        _seal(session, run_id=run_id)
    return done


def _seal(session: Session, *, run_id: int) -> None:
    """A run just ended: its series no longer change, so pack them (digests) and keep the last
    value of each (final_metrics, the run summary its headline and sort may read)."""
    conn = session.connection()
    build_digest(conn, run_id=run_id)
    final = last_metric_values(conn, run_id=run_id)
    session.execute(update(m.Run).where(m.Run.id == run_id).values(final_metrics=final))


def fail_queued(session: Session, *, run_id: int, error: str) -> bool:
    """A queued run that cannot start (its spec no longer validates, enqueue failed)."""
    result = session.execute(
        update(m.Run)
        .where(m.Run.id == run_id, m.Run.status == "queued")
        .values(status="failed", finished_at=m.utcnow(), error=error)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def append_log(session: Session, *, run_id: int, lines: Sequence[str]) -> None:
    """Appends log lines (each cut at 1,000 characters), keeping the last LOG_TAIL_LINES."""
    row = session.get(m.Run, run_id)
    if row is None or not lines:
        return
    row.log_tail = (list(row.log_tail or []) + [ln[:1000] for ln in lines])[-LOG_TAIL_LINES:]
    session.flush()


def set_task_id(session: Session, *, run_id: int, task_id: str) -> None:
    """Records the Celery task id a queued run's job was sent as."""
    session.execute(update(m.Run).where(m.Run.id == run_id).values(task_id=task_id))


@dataclass(frozen=True)
class ReapResult:
    """Runs a reaper sweep requeued (a new attempt is due) and failed (attempts exhausted)."""

    requeued: list[int]
    failed: list[int]


def reap_stale(session: Session, *, timeout_s: float, now: datetime | None = None) -> ReapResult:
    """Runs whose worker stopped heartbeating: requeue under the attempt cap, else fail.
    The caller re-sends the tasks of requeued runs after committing."""
    now = now or m.utcnow()
    cutoff = now - timedelta(seconds=timeout_s)
    stale = session.execute(
        select(m.Run.id, m.Run.attempt, m.Run.max_attempts, m.Run.cancel_requested).where(
            m.Run.status == "running", m.Run.external.is_(False), m.Run.heartbeat_at < cutoff
        )
    ).all()
    requeued: list[int] = []
    failed: list[int] = []
    for run_id, attempt, max_attempts, cancel in stale:
        base = [m.Run.id == run_id, m.Run.status == "running", m.Run.heartbeat_at < cutoff]
        if cancel:
            values: dict[str, Any] = {
                "status": "cancelled",
                "finished_at": now,
                "lease": None,
                "error": "cancelled (worker lost while stopping)",
            }
            target = failed
        elif attempt < max_attempts:
            values = {
                "status": "queued",
                "lease": None,
                "worker": None,
                "error": f"worker lost (no heartbeat for {timeout_s:.0f} s); requeued, attempt {attempt + 1} of {max_attempts} next",
            }
            target = requeued
        else:
            values = {
                "status": "failed",
                "finished_at": now,
                "lease": None,
                "error": f"worker lost: no heartbeat for {timeout_s:.0f} s on attempt {attempt} of {max_attempts}",
            }
            target = failed
        if session.execute(update(m.Run).where(*base).values(**values)).rowcount:  # type: ignore[attr-defined]
            target.append(run_id)
            append_log(session, run_id=run_id, lines=[f"{now:%H:%M:%S} reaper: {values['error']}"])
    session.flush()
    return ReapResult(requeued=requeued, failed=failed)


def reap_idle_external(session: Session, *, timeout_s: float, now: datetime | None = None) -> list[int]:
    """External runs that received nothing (no metric batch, no finish) for `timeout_s`: their
    script died, was killed or lost its network. They end `failed` with "no data for ..."; a
    later write is refused with 409 (terminal runs never change; docs/architecture.md). Every
    metric batch refreshes `heartbeat_at` (`heartbeat_external`)."""
    now = now or m.utcnow()
    cutoff = now - timedelta(seconds=timeout_s)
    idle = session.execute(
        select(m.Run.id, m.Run.heartbeat_at).where(
            m.Run.status == "running", m.Run.external.is_(True), m.Run.heartbeat_at < cutoff
        )
    ).all()
    failed = []
    for run_id, last in idle:
        error = (
            f"no data for {_duration(timeout_s)} (last data at {last:%Y-%m-%d %H:%M:%S} UTC): "
            "the script logging into this external run stopped without finishing it"
        )
        result = session.execute(
            update(m.Run)
            .where(m.Run.id == run_id, m.Run.status == "running", m.Run.heartbeat_at < cutoff)
            .values(status="failed", finished_at=now, error=error, lease=None)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            failed.append(run_id)
            append_log(session, run_id=run_id, lines=[f"{now:%H:%M:%S} reaper: {error}"])
            _seal(session, run_id=run_id)
    session.flush()
    return failed


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:g} s"


def queued_run_ids(session: Session) -> list[int]:
    """Ids of worker runs still queued."""
    return list(session.scalars(select(m.Run.id).where(m.Run.status == "queued", m.Run.external.is_(False))))


def count_by_status(session: Session) -> dict[str, int]:
    """Number of runs per status (statuses with no run are absent)."""
    rows = session.execute(select(m.Run.status, func.count()).group_by(m.Run.status)).all()
    return {s: n for s, n in rows}


def heartbeat_external(session: Session, *, run_id: int) -> bool:
    """Mark a running external run alive; False when the run is not one (absent, run by a
    worker, or ended). The write lock it takes also orders it before a concurrent finish."""
    if not 1 <= run_id <= MAX_ID:
        return False
    result = session.connection().execute(_HEARTBEAT_EXTERNAL, {"run_id": run_id, "now": m.utcnow()})
    return bool(result.rowcount)


# Built once and run on the connection: the ORM's UPDATE (statement building and its
# session-synchronisation pass) cost ~1 ms of every metric batch, the statement ~0.1 ms.
_RUNS = typing.cast(Table, m.Run.__table__)
_HEARTBEAT_EXTERNAL = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("run_id"), _RUNS.c.external.is_(True), _RUNS.c.status == "running")
    .values(heartbeat_at=bindparam("now"))
)
