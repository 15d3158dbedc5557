"""The API's background loop: reap runs whose worker went silent, and (re)send queued runs
whose job never reached the broker. Idempotent: several API processes may run it at once."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.db import unit_of_work
from backend.queue import JobQueue
from backend.store import models as m
from backend.store import runs

log = logging.getLogger(__name__)


def sweep_once(factory: sessionmaker[Session], queue: JobQueue, *, heartbeat_timeout_s: float,
               dispatch_after_s: float = 5.0) -> runs.ReapResult:
    with unit_of_work(factory) as session:
        reaped = runs.reap_stale(session, timeout_s=heartbeat_timeout_s)
        # Requeued runs need a new job; so do queued runs whose enqueue failed (no task id).
        cutoff = m.utcnow() - timedelta(seconds=dispatch_after_s)
        undispatched = list(session.scalars(
            select(m.Run.id).where(m.Run.status == "queued", m.Run.external.is_(False),
                                   m.Run.task_id.is_(None), m.Run.created_at < cutoff)
        ))
        kinds = dict(session.execute(
            select(m.Run.id, m.Run.kind).where(m.Run.id.in_(reaped.requeued + undispatched))
        ).all())
    for run_id in reaped.requeued + undispatched:
        try:
            task_id = queue.enqueue_run(run_id=run_id, kind=kinds.get(run_id, "train"))
        except Exception:
            log.warning("broker unavailable; run %s stays queued", run_id, exc_info=True)
            # Forget the task id so the next sweep tries again.
            with unit_of_work(factory) as session:
                session.execute(update(m.Run).where(m.Run.id == run_id).values(task_id=None))
            continue
        with unit_of_work(factory) as session:
            runs.set_task_id(session, run_id=run_id, task_id=task_id)
    if reaped.requeued or reaped.failed:
        log.warning("reaped runs: requeued %s, failed %s", reaped.requeued, reaped.failed)
    return reaped


class Maintenance:
    def __init__(self, factory: sessionmaker[Session], queue: JobQueue, *, interval_s: float,
                 heartbeat_timeout_s: float) -> None:
        self.factory, self.queue = factory, queue
        self.interval_s, self.timeout_s = interval_s, heartbeat_timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="optiboard-maintenance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                sweep_once(self.factory, self.queue, heartbeat_timeout_s=self.timeout_s)
            except Exception:
                log.exception("maintenance sweep failed; retrying next interval")
