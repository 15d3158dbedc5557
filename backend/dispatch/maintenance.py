"""The API's background loop: reap runs whose worker went silent, and (re)send queued runs
whose job is not in the broker. Idempotent: several API processes may run it at once.

A queued run's job can be missing for three reasons: the enqueue failed (no task id), the
broker lost its memory (a Redis restart without persistence drops queued and unacknowledged
messages), or a worker took the message and died before claiming the run. The loop re-sends
such runs. Sending twice is harmless: a worker only executes a run after taking its database
lease (runs.claim_run, one conditional UPDATE), so a second delivery finds the run no longer
queued and is skipped. See docs/reliability.md.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable

from sqlalchemy.orm import Session, sessionmaker

from backend.dispatch.outage import BROKER
from backend.dispatch.queue import QUEUE_FOR_KIND, JobQueue
from backend.store import metrics, queue_state, runs
from backend.store.db import unit_of_work

log = logging.getLogger(__name__)
# One line per broker outage (backend.dispatch.outage), shared with submission.
OUTAGE = BROKER

# kombu's Redis transport: one list per queue and priority step, and the hash (with a
# delivery-time index) of messages delivered to a worker and not yet acknowledged.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
_UNACKED, _UNACKED_INDEX = "unacked", "unacked_index"
BUSY_HOLD_FACTOR = 30


def _task_id(raw: bytes | str) -> str | None:
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # unacked entries are [message, exchange, routing_key]
            message = message[0]
        return str(message["headers"]["id"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def broker_task_ids(queue: JobQueue, *, held_for_at_most_s: float) -> set[str]:
    """Task ids of messages the broker still holds: waiting in a queue, or delivered to a
    worker within the last `held_for_at_most_s` seconds and not yet acknowledged. A message
    a worker has held longer while its run is still queued belongs to a dead worker (a live
    one claims the run within moments of receiving it)."""
    found: set[str] = set()
    with queue.app.connection_for_write() as conn:
        client = conn.default_channel.client
        for name in set(QUEUE_FOR_KIND.values()):
            for key in [name, *(f"{name}{_PRIORITY_SEP}{p}" for p in _PRIORITY_STEPS)]:
                found.update(t for t in map(_task_id, client.lrange(key, 0, -1)) if t)
        recent = client.zrangebyscore(_UNACKED_INDEX, time.time() - held_for_at_most_s, "+inf")
        if recent:
            found.update(t for t in map(_task_id, client.hmget(_UNACKED, recent)) if t)
    return found


class LostJobs:
    """Remembers since when each queued run's job has been missing from the broker, so a job
    is re-sent only after it was seen missing on sweeps at least `after_s` apart (a message
    in flight between the broker's list and a worker is never mistaken for a lost one)."""

    def __init__(self, *, after_s: float) -> None:
        self.after_s = after_s
        self._missing_since: dict[tuple[int, str], float] = {}

    def due(self, missing: Iterable[tuple[int, str]], *, now: float) -> list[int]:
        missing = set(missing)
        self._missing_since = {k: t for k, t in self._missing_since.items() if k in missing}
        due = []
        for key in missing:
            since = self._missing_since.setdefault(key, now)
            if now - since >= self.after_s:
                due.append(key[0])
        return due


def _find_lost(session: Session, queue: JobQueue, lost: LostJobs, *, held_for_at_most_s: float) -> list[int]:
    dispatched = queue_state.dispatched_task_ids(session)
    if not dispatched:
        lost.due([], now=time.monotonic())
        return []
    # A worker takes messages only when a job process is free, except right after it
    # reconnects to a restarted broker: then it may hold messages while its processes are busy.
    # So while some run is alive (fresh heartbeat) a held message is trusted much longer.
    if queue_state.count_alive(session, heartbeat_within_s=held_for_at_most_s):
        held_for_at_most_s *= BUSY_HOLD_FACTOR
    try:
        present = broker_task_ids(queue, held_for_at_most_s=held_for_at_most_s)
    except Exception as e:
        OUTAGE.failed(e, "cannot check queued runs' jobs now")
        return []
    missing = [(run_id, task_id) for run_id, task_id in dispatched.items() if task_id not in present]
    return lost.due(missing, now=time.monotonic())


def sweep_once(
    factory: sessionmaker[Session],
    queue: JobQueue,
    *,
    heartbeat_timeout_s: float,
    dispatch_after_s: float = 5.0,
    lost: LostJobs | None = None,
    external_idle_timeout_s: float | None = None,
) -> runs.ReapResult:
    with unit_of_work(factory) as session:
        reaped = runs.reap_stale(session, timeout_s=heartbeat_timeout_s)
        if external_idle_timeout_s is not None:
            idle = runs.reap_idle_external(session, timeout_s=external_idle_timeout_s)
            if idle:
                log.warning("external runs without data for %s s, failed: %s", external_idle_timeout_s, idle)
        # Requeued runs need a new job; so do queued runs whose enqueue failed (no task id).
        undispatched = queue_state.undispatched_run_ids(session, older_than_s=dispatch_after_s)
        lost_ids = _find_lost(session, queue, lost, held_for_at_most_s=heartbeat_timeout_s) if lost else []
        to_send = list(dict.fromkeys(reaped.requeued + undispatched + lost_ids))
        kinds = queue_state.kinds_of(session, to_send)
    if lost_ids:
        log.warning("queued runs whose job the broker no longer holds, re-sent: %s", lost_ids)
    for i, run_id in enumerate(to_send):
        try:
            task_id = queue.enqueue_run(run_id=run_id, kind=kinds.get(run_id, "train"))
        except Exception as e:
            waiting = to_send[i:]
            OUTAGE.failed(e, f"run(s) {', '.join(map(str, waiting))} stay queued")
            # Forget the task ids so the next sweep tries again; the rest of this sweep would
            # only wait on the same broker (kombu retries each send).
            with unit_of_work(factory) as session:
                queue_state.forget_task_ids(session, run_ids=waiting)
            break
        OUTAGE.recovered()
        with unit_of_work(factory) as session:
            runs.set_task_id(session, run_id=run_id, task_id=task_id)
    if reaped.requeued or reaped.failed:
        log.warning("reaped runs: requeued %s, failed %s", reaped.requeued, reaped.failed)
    try:
        with unit_of_work(factory) as session:
            metrics.backfill_digests(session)
    except Exception:  # an optimisation: the compare read falls back to the blocks without it
        log.warning("digesting finished runs failed", exc_info=True)
    return reaped


class Maintenance:
    def __init__(
        self,
        factory: sessionmaker[Session],
        queue: JobQueue,
        *,
        interval_s: float,
        heartbeat_timeout_s: float,
        lost_after_s: float | None = None,
        external_idle_timeout_s: float | None = None,
    ) -> None:
        self.factory, self.queue = factory, queue
        self.external_idle_timeout_s = external_idle_timeout_s
        self.interval_s, self.timeout_s = interval_s, heartbeat_timeout_s
        # Seen missing on at least two sweeps, and never sooner than 2 s.
        self.lost = LostJobs(after_s=lost_after_s if lost_after_s is not None else max(2.0, 2 * interval_s))
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
                sweep_once(
                    self.factory,
                    self.queue,
                    heartbeat_timeout_s=self.timeout_s,
                    lost=self.lost,
                    external_idle_timeout_s=self.external_idle_timeout_s,
                )
            except Exception:
                log.exception("maintenance sweep failed; retrying next interval")
