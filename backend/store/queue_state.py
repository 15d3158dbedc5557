"""What the dispatcher (backend.dispatch.maintenance) reads and writes about queued runs' jobs.

Every statement of the maintenance loop lives here; each returns plain values and only flushes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.store import models as m
from runspec.vocabulary import RunStatus


def dispatched_task_ids(session: Session) -> dict[int, str]:
    """Queued worker runs whose job was sent: run id → the Celery task id it was sent as."""
    rows = session.execute(
        select(m.Run.id, m.Run.task_id).where(
            m.Run.status == RunStatus.QUEUED, m.Run.external.is_(False), m.Run.task_id.is_not(None)
        )
    ).all()
    return {run_id: task_id for run_id, task_id in rows if task_id is not None}


def count_alive(session: Session, *, heartbeat_within_s: float) -> int:
    """Worker runs running with a heartbeat in the last `heartbeat_within_s` seconds."""
    return (
        session.scalar(
            select(func.count())
            .select_from(m.Run)
            .where(
                m.Run.status == RunStatus.RUNNING,
                m.Run.external.is_(False),
                m.Run.heartbeat_at >= m.utcnow() - timedelta(seconds=heartbeat_within_s),
            )
        )
        or 0
    )


def undispatched_run_ids(session: Session, *, older_than_s: float) -> list[int]:
    """Queued worker runs with no job sent (the enqueue failed, or the run was requeued),
    created more than `older_than_s` seconds ago (younger ones are still being sent)."""
    cutoff = m.utcnow() - timedelta(seconds=older_than_s)
    return list(
        session.scalars(
            select(m.Run.id).where(
                m.Run.status == RunStatus.QUEUED,
                m.Run.external.is_(False),
                m.Run.task_id.is_(None),
                m.Run.created_at < cutoff,
            )
        )
    )


def kinds_of(session: Session, run_ids: Sequence[int]) -> dict[int, str]:
    """Run id → kind (`train` | `optimize`), which picks the queue its job goes to."""
    if not run_ids:
        return {}
    return dict(session.execute(select(m.Run.id, m.Run.kind).where(m.Run.id.in_(list(run_ids)))).tuples().all())


def forget_task_ids(session: Session, *, run_ids: Sequence[int]) -> None:
    """Clears the task id of those runs still queued, so the next sweep sends their jobs again."""
    session.execute(
        update(m.Run).where(m.Run.id.in_(list(run_ids)), m.Run.status == RunStatus.QUEUED).values(task_id=None)
    )
