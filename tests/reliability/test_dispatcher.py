"""Promise 4, the dispatcher alone (real Redis, real database, no worker): a queued run whose
message the broker no longer holds is re-sent, after being seen missing on two sweeps; a
message waiting in the queue, or held by a live worker, is never duplicated; one held too long
by a dead worker is re-sent. A duplicate, should one happen, is harmless: one claim wins."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from backend.core.settings import Settings
from backend.dispatch.maintenance import LostJobs, sweep_once
from backend.dispatch.queue import JobQueue
from backend.store import models as m
from backend.store import runs
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from runspec.spec import RunSpec
from tests.reliability import figures
from tests.reliability.redis_server import RedisServer

LOST_AFTER_S = 0.5


@pytest.fixture
def setup(db_url: str, broker: RedisServer, tmp_path: Path) -> Iterator[tuple[sessionmaker[Session], JobQueue]]:
    broker.client().flushdb()
    queue = JobQueue(Settings(data_dir=tmp_path, database_url=db_url, redis_url=broker.url))
    engine = make_engine(db_url)
    yield make_sessionmaker(engine), queue
    queue.close()
    engine.dispose()


def _queued_run(factory: sessionmaker[Session], queue: JobQueue) -> tuple[int, str]:
    with unit_of_work(factory) as s:
        run_id = runs.create_run(s, spec=RunSpec(name="dispatch")).id
    task_id = queue.enqueue_run(run_id=run_id, kind="train")
    with unit_of_work(factory) as s:
        runs.set_task_id(s, run_id=run_id, task_id=task_id)
    return run_id, task_id


def _task_id(factory: sessionmaker[Session], run_id: int) -> str | None:
    with unit_of_work(factory) as s:
        return s.get(m.Run, run_id).task_id  # type: ignore[union-attr]


def _sweep(factory: sessionmaker[Session], queue: JobQueue, lost: LostJobs) -> None:
    sweep_once(factory, queue, heartbeat_timeout_s=30, lost=lost)


def test_a_lost_message_is_resent_once_and_a_present_one_never(
    setup: tuple[sessionmaker[Session], JobQueue], broker: RedisServer
) -> None:
    factory, queue = setup
    lost = LostJobs(after_s=LOST_AFTER_S)
    run_id, task_id = _queued_run(factory, queue)
    redis = broker.client()
    for _ in range(3):  # waiting in the queue: left alone
        _sweep(factory, queue, lost)
        time.sleep(LOST_AFTER_S)
    assert redis.llen("train") == 1 and _task_id(factory, run_id) == task_id
    redis.delete("train")  # the broker forgets it (restart without persistence)
    _sweep(factory, queue, lost)  # first seen missing: could be in flight to a worker
    assert redis.llen("train") == 0
    time.sleep(LOST_AFTER_S)
    _sweep(factory, queue, lost)  # still missing on a later sweep: re-sent
    resent = _task_id(factory, run_id)
    assert redis.llen("train") == 1 and resent not in (None, task_id)
    figures.add("lost messages re-sent by the dispatcher")
    _sweep(factory, queue, lost)
    time.sleep(LOST_AFTER_S)
    _sweep(factory, queue, lost)
    assert redis.llen("train") == 1 and _task_id(factory, run_id) == resent  # not sent again


def test_a_message_held_by_a_live_worker_is_not_resent_but_one_held_by_a_dead_one_is(
    setup: tuple[sessionmaker[Session], JobQueue], broker: RedisServer
) -> None:
    factory, queue = setup
    lost = LostJobs(after_s=LOST_AFTER_S)
    run_id, task_id = _queued_run(factory, queue)
    redis = broker.client()
    # What kombu does when a worker takes a message and has not acknowledged it yet.
    raw = redis.rpop("train")
    redis.hset("unacked", "tag-1", json.dumps([json.loads(raw), "", "train"]))
    redis.zadd("unacked_index", {"tag-1": time.time()})
    for _ in range(3):
        _sweep(factory, queue, lost)
        time.sleep(LOST_AFTER_S)
    assert redis.llen("train") == 0 and _task_id(factory, run_id) == task_id
    # Held for 31 s while another run is training (a busy worker may hold it): left alone.
    with unit_of_work(factory) as s:
        busy = runs.create_run(s, spec=RunSpec(name="busy")).id
        assert runs.claim_run(s, run_id=busy, worker="w")
    redis.zadd("unacked_index", {"tag-1": time.time() - 31})
    for _ in range(2):
        _sweep(factory, queue, lost)
        time.sleep(LOST_AFTER_S)
    assert redis.llen("train") == 0 and _task_id(factory, run_id) == task_id
    # Nothing trains any more: whoever holds it for longer than the heartbeat timeout is dead.
    with unit_of_work(factory) as s:
        runs.finish_run(s, run_id=busy, lease=s.get(m.Run, busy).lease, status="succeeded")  # type: ignore[union-attr]
    _sweep(factory, queue, lost)
    time.sleep(LOST_AFTER_S)
    _sweep(factory, queue, lost)
    assert redis.llen("train") == 1 and _task_id(factory, run_id) != task_id


def test_a_duplicate_send_is_harmless(setup: tuple[sessionmaker[Session], JobQueue]) -> None:
    """Two API processes re-send the same run: the first claim takes the lease, the rest skip."""
    factory, queue = setup
    run_id, _ = _queued_run(factory, queue)
    for _ in range(2):
        queue.enqueue_run(run_id=run_id, kind="train")
    with unit_of_work(factory) as s:
        leases = [runs.claim_run(s, run_id=run_id, worker=f"w{i}") for i in range(3)]
    assert sum(lease is not None for lease in leases) == 1
