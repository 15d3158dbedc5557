"""Studies and their trials (issue 20): rows in, plain records out; functions only flush.

A trial is an ordinary run (runs.study_id, runs.trial_number, unique per study) plus a
study_trials row with its sampled recipe and what the study was told. The study loop
(backend/dispatch/studies.py) rebuilds its sampler from these rows alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.store import models as m
from runspec.studies import StudySpec
from runspec.vocabulary import ACTIVE_STUDY_STATUSES, MAX_ID

ACTIVE_STATUSES = ACTIVE_STUDY_STATUSES
# Where the stored spec JSON keeps the default chains left out at creation (not a StudySpec field).
LEFT_OUT_KEY = "left_out_chains"


@dataclass(frozen=True)
class StudyRecord:
    """A study as the API and the loop see it: `spec` is the StudySpec as JSON data (with the
    budget as extended since), `reference` the baseline variant's figures ({format, accuracy,
    f1, size_bytes, gzip_bytes, ...}), times timezone-aware UTC."""

    id: int
    name: str
    experiment: str
    baseline_run_id: int
    dataset: dict[str, Any]
    objectives: list[str]
    constraint: dict[str, Any]
    search_space: dict[str, Any]
    budget: dict[str, Any]
    strategy: str
    seed: int
    spec: dict[str, Any]
    reference: dict[str, Any]
    status: str
    stop_reason: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def study_spec(self) -> StudySpec:
        """The spec with the current budget (extensions included)."""
        data = {k: v for k, v in self.spec.items() if k != LEFT_OUT_KEY}
        return StudySpec.model_validate({**data, "budget": self.budget})

    @property
    def left_out_chains(self) -> dict[str, str]:
        """Default chains left out at creation because this baseline cannot take them: chain →
        why (kept in the stored spec's JSON beside the StudySpec fields)."""
        return dict(self.spec.get(LEFT_OUT_KEY) or {})

    @property
    def waiting_for_baseline(self) -> bool:
        """True while a study from an uploaded model waits for its baseline run: no reference
        figures yet, and not ended."""
        return not self.reference and self.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class TrialRecord:
    """One trial with its run's state: `values` in the study's objective order (None until
    told), `constraint_value` = bar − metric (≤ 0 feasible), `worker_seconds` the run's wall
    time on its worker, `run_*` the run's status, progress (0–1), summary and times."""

    study_id: int
    number: int
    run_id: int | None
    params: dict[str, Any]
    sampler_attrs: dict[str, Any]
    state: str
    values: list[float] | None
    constraint_value: float | None
    pruned_reason: str | None
    worker_seconds: float | None
    created_at: datetime
    told_at: datetime | None
    run_status: str | None = None
    run_progress: float | None = None
    run_summary: str | None = None
    run_started_at: datetime | None = None
    run_finished_at: datetime | None = None
    run_error: str | None = None

    @property
    def feasible(self) -> bool | None:
        """True/False once told complete; None otherwise."""
        if self.state != "complete" or self.constraint_value is None:
            return None
        return self.constraint_value <= 0


def _study(row: m.Study) -> StudyRecord:
    return StudyRecord(
        id=row.id,
        name=row.name,
        experiment=row.experiment,
        baseline_run_id=row.baseline_run_id,
        dataset=dict(row.dataset or {}),
        objectives=list(row.objectives or []),
        constraint=dict(row.constraint or {}),
        search_space=dict(row.search_space or {}),
        budget=dict(row.budget or {}),
        strategy=row.strategy,
        seed=row.seed,
        spec=dict(row.spec or {}),
        reference=dict(row.reference or {}),
        status=row.status,
        stop_reason=row.stop_reason,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def create_study(
    session: Session,
    *,
    spec: StudySpec,
    reference: dict[str, Any],
    dataset: dict[str, Any],
    baseline_run_id: int | None = None,
    left_out_chains: dict[str, str] | None = None,
) -> StudyRecord:
    """A new `queued` study for a validated spec, flushed. `baseline_run_id` defaults to the
    spec's (0 for a study from an uploaded model until its baseline run exists: set_baseline_run);
    an empty `reference` means the study waits for its baseline run."""
    data = spec.model_dump(mode="json")
    if left_out_chains:
        data[LEFT_OUT_KEY] = dict(left_out_chains)
    row = m.Study(
        name=spec.name,
        experiment=spec.experiment or spec.name,
        baseline_run_id=baseline_run_id if baseline_run_id is not None else (spec.baseline_run_id or 0),
        dataset=dataset,
        objectives=data["objectives"],
        constraint=data["constraint"],
        search_space=data["search_space"],
        budget=data["budget"],
        strategy=spec.strategy,
        seed=spec.seed,
        spec=data,
        reference=reference,
        status="queued",
        created_at=m.utcnow(),
    )
    session.add(row)
    session.flush()
    return _study(row)


def get_study(session: Session, *, study_id: int, lock: bool = False) -> StudyRecord | None:
    """The study, or None. `lock`: SELECT … FOR UPDATE on PostgreSQL, so two API processes
    ticking the same study take turns (SQLite's write transactions are already serial)."""
    if not 1 <= study_id <= MAX_ID:
        return None
    query = select(m.Study).where(m.Study.id == study_id)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is not None:
        session.refresh(row)  # a lock taken after an earlier read must see the committed row
    return _study(row) if row is not None else None


def list_studies(session: Session, *, limit: int = 100, offset: int = 0) -> tuple[list[StudyRecord], int]:
    """Newest first, and the total count."""
    count = session.scalar(select(func.count()).select_from(m.Study)) or 0
    rows = session.scalars(select(m.Study).order_by(m.Study.id.desc()).limit(limit).offset(offset)).all()
    return [_study(r) for r in rows], count


def active_study_ids(session: Session) -> list[int]:
    """Studies the loop must look at: queued, running or paused (paused ones still hear results)."""
    return list(session.scalars(select(m.Study.id).where(m.Study.status.in_(ACTIVE_STATUSES)).order_by(m.Study.id)))


def set_status(
    session: Session,
    *,
    study_id: int,
    status: str,
    only_from: Sequence[str],
    stop_reason: str | None = None,
) -> bool:
    """Moves the study to `status` if it is in one of `only_from`; True if it moved. Terminal
    states (stopped, finished) set finished_at; running sets started_at the first time."""
    now = m.utcnow()
    values: dict[str, Any] = {"status": status}
    if status == "failed":
        values.update(error=stop_reason)
    if status in ACTIVE_STATUSES:
        values.update(finished_at=None, stop_reason=stop_reason)
    else:
        values.update(finished_at=now, stop_reason=stop_reason)
    result = session.execute(
        update(m.Study).where(m.Study.id == study_id, m.Study.status.in_(list(only_from))).values(**values)
    )
    if status == "running":
        session.execute(
            update(m.Study).where(m.Study.id == study_id, m.Study.started_at.is_(None)).values(started_at=now)
        )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_baseline_run(session: Session, *, study_id: int, run_id: int) -> None:
    """Links the baseline run a study from an uploaded model created."""
    session.execute(update(m.Study).where(m.Study.id == study_id).values(baseline_run_id=run_id))


def set_reference(session: Session, *, study_id: int, reference: dict[str, Any]) -> None:
    """Stores the baseline's reference figures once its run has succeeded (the study stops waiting)."""
    session.execute(update(m.Study).where(m.Study.id == study_id).values(reference=reference))


def set_budget(session: Session, *, study_id: int, budget: dict[str, Any]) -> None:
    session.execute(update(m.Study).where(m.Study.id == study_id).values(budget=budget))


def list_trials(session: Session, *, study_id: int) -> list[TrialRecord]:
    """Every trial of the study in number order, with its run's state."""
    rows = session.execute(
        select(
            m.StudyTrial,
            m.Run.status,
            m.Run.progress,
            m.Run.summary,
            m.Run.started_at,
            m.Run.finished_at,
            m.Run.error,
        )
        .outerjoin(m.Run, m.Run.id == m.StudyTrial.run_id)
        .where(m.StudyTrial.study_id == study_id)
        .order_by(m.StudyTrial.number)
    ).all()
    return [
        TrialRecord(
            study_id=t.study_id,
            number=t.number,
            run_id=t.run_id,
            params=dict(t.params or {}),
            sampler_attrs=dict(t.sampler_attrs or {}),
            state=t.state,
            values=list(t.values) if t.values is not None else None,
            constraint_value=t.constraint_value,
            pruned_reason=t.pruned_reason,
            worker_seconds=t.worker_seconds,
            created_at=t.created_at,
            told_at=t.told_at,
            run_status=status,
            run_progress=progress,
            run_summary=summary,
            run_started_at=started,
            run_finished_at=finished,
            run_error=error,
        )
        for t, status, progress, summary, started, finished, error in rows
    ]


def next_trial_number(session: Session, *, study_id: int) -> int:
    """One more than the highest trial number so far (0 for the first)."""
    top = session.scalar(select(func.max(m.StudyTrial.number)).where(m.StudyTrial.study_id == study_id))
    return 0 if top is None else int(top) + 1


def add_trial(
    session: Session,
    *,
    study_id: int,
    number: int,
    params: dict[str, Any],
    run_id: int | None,
    sampler_attrs: dict[str, Any] | None = None,
    state: str = "running",
    error: str | None = None,
) -> None:
    """Records a trial (and links its run: runs.study_id, runs.trial_number), flushed. The
    primary key (study, number) and the runs' unique (study_id, trial_number) refuse a second
    trial of the same number (sqlalchemy.exc.IntegrityError)."""
    now = m.utcnow()
    session.add(
        m.StudyTrial(
            study_id=study_id,
            number=number,
            run_id=run_id,
            params=params,
            sampler_attrs=sampler_attrs or {},
            state=state,
            pruned_reason=error,
            created_at=now,
            told_at=None if state == "running" else now,
        )
    )
    if run_id is not None:
        session.execute(update(m.Run).where(m.Run.id == run_id).values(study_id=study_id, trial_number=number))
    session.flush()


def mark_pruning(session: Session, *, study_id: int, number: int, reason: str) -> None:
    """Why a running trial is being stopped (it is told `pruned` when its run has ended)."""
    session.execute(
        update(m.StudyTrial)
        .where(m.StudyTrial.study_id == study_id, m.StudyTrial.number == number, m.StudyTrial.state == "running")
        .values(pruned_reason=reason)
    )


def tell_trial(
    session: Session,
    *,
    study_id: int,
    number: int,
    state: str,
    values: list[float] | None = None,
    constraint_value: float | None = None,
    pruned_reason: str | None = None,
    worker_seconds: float | None = None,
) -> bool:
    """Records a running trial's outcome once: False if it was already told (a second API
    process, or a tick after a restart, cannot tell it twice)."""
    extra: dict[str, Any] = {} if pruned_reason is None else {"pruned_reason": pruned_reason}
    result = session.execute(
        update(m.StudyTrial)
        .where(m.StudyTrial.study_id == study_id, m.StudyTrial.number == number, m.StudyTrial.state == "running")
        .values(
            state=state,
            values=values,
            constraint_value=constraint_value,
            worker_seconds=worker_seconds,
            told_at=m.utcnow(),
            **extra,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def val_accuracy_curves(session: Session, *, run_ids: Sequence[int]) -> dict[int, list[float]]:
    """The per-epoch validation accuracies (fractions, in step order; NaN points left out) of
    these runs, from metric_points key "val_accuracy"."""
    if not run_ids:
        return {}
    rows = session.execute(
        select(m.MetricPoint.run_id, m.MetricPoint.value)
        .where(m.MetricPoint.run_id.in_(list(run_ids)), m.MetricPoint.key == "val_accuracy")
        .order_by(m.MetricPoint.run_id, m.MetricPoint.step)
    ).all()
    out: dict[int, list[float]] = {i: [] for i in run_ids}
    for run_id, value in rows:
        if value is not None:
            out[run_id].append(float(value))
    return out


def count_busy_runs(session: Session) -> int:
    """Worker runs queued or running (all studies and users): what occupies the worker pool."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(m.Run)
            .where(m.Run.status.in_(["queued", "running"]), m.Run.external.is_(False))
        )
        or 0
    )
