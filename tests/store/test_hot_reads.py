"""The hot-path reads (plain SQL) give exactly the records of the ORM path, on both backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from backend.db import make_engine
from backend.spec import RunSpec
from backend.store import runs, tokens, variants
from backend.store.hot_reads import HotReads


def _variant(session: Session, run_id: int, fmt: str, acc: float | None, size: int) -> None:
    variants.add_variant(session, run_id=run_id, fields=dict(
        format=fmt, artifact_path=f"runs/{run_id}/{fmt}", accuracy=acc, precision=acc, recall=acc, f1=acc,
        confusion=[[1, 0], [0, 1]], size_bytes=size, gzip_bytes=size, params=10, nonzero_params=5,
        latency_p50_ms=size / 1000, latency_p95_ms=None, throughput_per_s=None, hardware={}, extra={}))


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
    plain = runs.create_run(session, spec=RunSpec.model_validate(
        {"name": "queued <b>ü</b>", "experiment": "exp", "tags": ["a", "b"], "notes": "n\n'\""}))
    external = runs.create_run(session, spec=RunSpec.model_validate({"name": "ext", "experiment": "other", "external": True}))
    lease = runs.claim_run(session, run_id=plain.id, worker="w@h", hardware={"cpu": "x", "cores": 2})
    assert lease
    runs.heartbeat(session, run_id=plain.id, lease=lease, progress=0.5, eta_seconds=3.5)
    _variant(session, plain.id, "keras", 0.5, 5000)
    _variant(session, plain.id, "tflite-int8", None, 1000)
    _variant(session, plain.id, "tflite-float32", 0.8, 3000)  # the headline
    _variant(session, external.id, "tflite-int8", 0.9, 900)  # only one format: it speaks for the run
    runs.finish_run(session, run_id=plain.id, lease=lease, status="failed", error="boom")
    session.commit()

    for run_id in (plain.id, external.id):
        expected = runs.get_run(session, run_id=run_id)
        got = hot.run(run_id)
        assert got == expected  # every field, headline included, same types and time zones
    assert hot.run(plain.id).headline == {"format": "tflite-float32", "accuracy": 0.8, "size_bytes": 3000,  # type: ignore[union-attr]
                                          "latency_p50_ms": 3.0}
    assert hot.run(999) is None and hot.run(0) is None and hot.run(2**40) is None


def test_tokens_verify_the_same_and_revocation_is_seen_at_once(session: Session, hot: HotReads) -> None:
    record, secret = tokens.create_token(session, name="ci")
    session.commit()
    assert tokens.verify_token_hot(hot, token=secret) == tokens.verify_token(session, token=secret) == record
    assert tokens.verify_token_hot(hot, token=secret + "x") is None
    assert tokens.verify_token_hot(hot, token="") is None
    assert tokens.revoke_token(session, token_id=record.id)
    session.commit()
    assert tokens.verify_token_hot(hot, token=secret) is None  # the very next check


def test_a_lost_connection_is_replaced(session: Session, hot: HotReads) -> None:
    _, secret = tokens.create_token(session, name="ci")
    session.commit()
    assert tokens.verify_token_hot(hot, token=secret) is not None
    hot._conn.close()  # the server restarted, or the connection broke
    assert tokens.verify_token_hot(hot, token=secret) is not None
