"""GET /metrics and GET /api/workers against real databases (SQLite and PostgreSQL) and a
real Redis, without workers: the numbers must match the rows, in valid Prometheus text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis as redis_lib
from fastapi.testclient import TestClient
from sqlalchemy import update

from backend.api.app import create_app
from backend.core.settings import Settings
from backend.store import metrics, runs
from backend.store import models as m
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from runspec.spec import RunSpec
from tests.conftest import make_token
from tests.stack import free_port, tiny_spec

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? \S+$')


def _client(db_url: str, redis_url: str, tmp_path: Path) -> TestClient:
    settings = Settings(data_dir=tmp_path, database_url=db_url, redis_url=redis_url)
    client = TestClient(create_app(settings, maintenance=False))
    client.headers["Authorization"] = f"Bearer {make_token(db_url)}"
    return client


@pytest.fixture
def seeded(db_url: str) -> Iterator[str]:
    """Runs in every state; three finished train runs lasting 3 s, 100 s and 4000 s."""
    factory = make_sessionmaker(make_engine(db_url))
    with unit_of_work(factory) as s:
        ids = [runs.create_run(s, spec=RunSpec.model_validate(tiny_spec(f"r{i}"))).id for i in range(5)]
        now = m.utcnow()
        plan = [("succeeded", 3.0), ("succeeded", 100.0), ("failed", 4000.0), ("running", None), ("queued", None)]
        for run_id, (status, seconds) in zip(ids, plan, strict=True):
            if status == "queued":
                continue
            lease = runs.claim_run(s, run_id=run_id, worker="w@h")
            assert lease
            if seconds is None:
                continue
            runs.finish_run(s, run_id=run_id, lease=lease, status=status)
            s.execute(
                update(m.Run)
                .where(m.Run.id == run_id)
                .values(started_at=now - timedelta(seconds=seconds), finished_at=now)
            )
        metrics.log_batch(s, run_id=ids[0], points=[metrics.Point("loss", i, 1.0 / (i + 1), 0.0) for i in range(7)])
    yield db_url


def _value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert match, f"{sample} missing from\n{text}"
    return float(match[1])


def test_metrics_counts_runs_durations_queue_and_points(seeded: str, redis_url: str, tmp_path: Path) -> None:
    redis_lib.Redis.from_url(redis_url).rpush("train", b"{}", b"{}")  # two jobs waiting
    with _client(seeded, redis_url, tmp_path) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line

    for status, n in {"queued": 1, "running": 1, "succeeded": 2, "failed": 1, "cancelled": 0}.items():
        assert _value(text, f'optiboard_runs{{status="{status}"}}') == n
    assert _value(text, 'optiboard_queue_length{queue="train"}') == 2
    assert _value(text, 'optiboard_queue_length{queue="optimize"}') == 0
    assert _value(text, "optiboard_broker_up") == 1
    assert _value(text, "optiboard_metric_points") == 7

    ok = 'optiboard_run_duration_seconds_bucket{kind="train",status="succeeded",le="%s"}'
    assert _value(text, ok % "5") == 1  # the 3 s run
    assert _value(text, ok % "60") == 1
    assert _value(text, ok % "120") == 2  # cumulative: plus the 100 s run
    assert _value(text, ok % "+Inf") == 2
    assert _value(text, 'optiboard_run_duration_seconds_count{kind="train",status="succeeded"}') == 2
    total = _value(text, 'optiboard_run_duration_seconds_sum{kind="train",status="succeeded"}')
    assert total == pytest.approx(103.0, abs=0.5)
    failed = 'optiboard_run_duration_seconds_bucket{kind="train",status="failed",le="%s"}'
    assert _value(text, failed % "3600") == 0 and _value(text, failed % "7200") == 1
    # Unfinished runs have no duration yet.
    assert 'status="running"' not in text.split("optiboard_run_duration_seconds")[-1]


def test_metrics_and_workers_need_a_token(db_url: str, redis_url: str, tmp_path: Path) -> None:
    with _client(db_url, redis_url, tmp_path) as client:
        del client.headers["Authorization"]
        assert client.get("/metrics").status_code == 401
        assert client.get("/api/workers").status_code == 401
        assert client.get("/healthz").status_code == 200


@pytest.mark.slow
def test_metrics_report_a_broker_outage_instead_of_failing(db_url: str, tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with _client(db_url, dead, tmp_path) as client:
        response = client.get("/metrics")
        assert response.status_code == 200
        assert _value(response.text, "optiboard_broker_up") == 0
        assert "optiboard_queue_length{" not in response.text
        assert client.get("/api/workers").status_code == 503


def test_workers_list_is_empty_with_no_worker_online(db_url: str, redis_url: str, tmp_path: Path) -> None:
    with _client(db_url, redis_url, tmp_path) as client:
        response = client.get("/api/workers", params={"timeout": 0.5})
        assert response.status_code == 200
        assert response.json() == {"data": [], "count": 0, "queues": {"train": 0, "optimize": 0}}
        assert client.get("/api/workers", params={"timeout": 60}).status_code == 422
