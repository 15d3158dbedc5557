"""The hot-path reads (plain SQL) give exactly the records of the ORM path, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from backend.store import runs, tokens
from backend.store.db import make_engine
from backend.store.hot_reads import HotReads
from runspec.spec import RunSpec
from tests.factories import make_variant

T = TypeVar("T")


def _variant(session: Session, run_id: int, fmt: str, acc: float | None, size: int) -> None:
    make_variant(
        session, run_id, fmt, accuracy=acc, size_bytes=size, confusion=[[1, 0], [0, 1]], params=10, nonzero_params=5
    )


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on a thread of its own: the browser tests' Playwright keeps a loop running on
    the main thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def hot(db_url: str) -> Iterator[HotReads]:
    """The hot-path reader on its own engine; it connects at its first read (autocommit: it
    sees what the test session committed before)."""
    engine = make_engine(db_url)
    reads = HotReads(engine)
    yield reads
    reads.close()
    engine.dispose()


def test_runs_read_the_same_through_both_paths(session: Session, hot: HotReads) -> None:
    plain = runs.create_run(
        session,
        spec=RunSpec.model_validate(
            {"name": "queued <b>ü</b>", "experiment": "exp", "tags": ["a", "b"], "notes": "n\n'\""}
        ),
    )
    external = runs.create_run(
        session, spec=RunSpec.model_validate({"name": "ext", "experiment": "other", "external": True})
    )
    lease = runs.claim_run(session, run_id=plain.id, worker="w@h", hardware={"cpu": "x", "cores": 2})
    assert lease
    runs.heartbeat(session, run_id=plain.id, lease=lease, progress=0.5, eta_seconds=3.5)
    _variant(session, plain.id, "keras", 0.5, 5000)
    _variant(session, plain.id, "tflite-int8", 0.8, 1000)  # the headline: the deployable variant
    _variant(session, plain.id, "tflite-float32", None, 3000)
    _variant(session, external.id, "tflite-int8", 0.9, 900)  # only one format: it speaks for the run
    runs.finish_run(session, run_id=plain.id, lease=lease, status="failed", error="boom")
    # a same-budget control links both ways: control_of_run_id stored, control_run_id read back
    control = runs.create_run(
        session, spec=RunSpec.model_validate({"name": "queued (control)"}), control_of_run_id=plain.id
    )
    session.commit()

    for run_id in (plain.id, external.id, control.id):
        expected = runs.get_run(session, run_id=run_id)
        got = _run(hot.run(run_id))
        assert got == expected  # every field, headline included, same types and time zones
    assert _run(hot.run(plain.id)).control_run_id == control.id  # type: ignore[union-attr]
    assert _run(hot.run(control.id)).control_of_run_id == plain.id  # type: ignore[union-attr]
    assert _run(hot.run(external.id)).control_run_id is None  # type: ignore[union-attr]
    assert _run(hot.run(plain.id)).headline == {
        "format": "tflite-int8",
        "accuracy": 0.8,
        "size_bytes": 1000,  # type: ignore[union-attr]
        "gzip_bytes": 1000,
        "latency_p50_ms": 1.0,
        "latency_p90_ms": None,
        "latency_unstable": None,
    }
    assert _run(hot.run(999)) is None and _run(hot.run(0)) is None and _run(hot.run(2**40)) is None


def test_tokens_verify_the_same_and_revocation_is_seen_at_once(session: Session, hot: HotReads) -> None:
    record, secret = tokens.create_token(session, name="ci")
    session.commit()
    assert _run(tokens.verify_token_hot(hot, token=secret)) == tokens.verify_token(session, token=secret) == record
    assert _run(tokens.verify_token_hot(hot, token=secret + "x")) is None
    assert _run(tokens.verify_token_hot(hot, token="")) is None
    assert tokens.revoke_token(session, token_id=record.id)
    session.commit()
    assert _run(tokens.verify_token_hot(hot, token=secret)) is None  # the very next check


def test_a_lost_connection_is_replaced_and_reads_run_side_by_side(session: Session, hot: HotReads) -> None:
    _, secret = tokens.create_token(session, name="ci")
    session.commit()

    async def scenario() -> None:
        assert await tokens.verify_token_hot(hot, token=secret) is not None
        if hot._pg is None:
            hot._conn.close()  # the file's connection broke
        else:  # the server ends the backends (a restart, an administrator)
            pids = [c.info.backend_pid for c in hot._pg._idle]
            assert pids
            session.execute(text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:p AS int[])) AS pid"), {"p": pids})
            session.commit()
        assert await tokens.verify_token_hot(hot, token=secret) is not None
        # many requests at once: each gets its answer (on PostgreSQL over several connections)
        got = await asyncio.gather(
            *(tokens.verify_token_hot(hot, token=secret + ("" if i % 2 else "x")) for i in range(12))
        )
        assert [g is not None for g in got] == [i % 2 == 1 for i in range(12)]
        if hot._pg is not None:
            assert 1 < len(hot._pg._idle) <= hot._pg.size

    _run(scenario())


def test_the_token_and_the_run_are_read_together_and_the_run_only_for_a_valid_token(
    session: Session, hot: HotReads
) -> None:
    record, secret = tokens.create_token(session, name="ci")
    run = runs.create_run(session, spec=RunSpec.model_validate({"name": "r", "experiment": "e"}))
    session.commit()
    expected = runs.get_run(session, run_id=run.id)
    assert _run(tokens.verify_token_reading_run(hot, token=secret, run_id=run.id)) == (record, expected)
    assert _run(tokens.verify_token_reading_run(hot, token=secret, run_id=run.id + 1)) == (record, None)
    assert _run(tokens.verify_token_reading_run(hot, token=secret, run_id=2**40)) == (record, None)
    assert _run(tokens.verify_token_reading_run(hot, token=secret + "x", run_id=run.id)) == (None, None)
    assert _run(hot.token_and_run(None, run.id)) == (None, expected)
    assert tokens.revoke_token(session, token_id=record.id)
    session.commit()
    assert _run(tokens.verify_token_reading_run(hot, token=secret, run_id=run.id)) == (None, None)
    assert _run(hot.token_and_run(tokens.hash_token(secret), run.id))[0].revoked_at is not None  # type: ignore[union-attr]
