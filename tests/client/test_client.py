"""optiboard.Client against the real API process (live_stack): external runs, batched metric
logging with NaN/inf, reads, finish, one error type, and a submitted run followed to its end."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

import optiboard
from tests.conftest import Stack
from tests.stack import tiny_spec, wait_for


@pytest.fixture
def client(live_stack: Stack) -> optiboard.Client:
    c = optiboard.Client(live_stack.url, token=live_stack.token, batch_size=250)
    yield c
    c.close()


def test_import_does_not_pull_tensorflow_or_the_server() -> None:
    import subprocess

    code = (
        "import sys, optiboard; bad = [m for m in ('tensorflow', 'backend', 'worker', 'fastapi',"
        " 'sqlalchemy') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2]
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_external_run_batches_nan_and_exact_counts(client: optiboard.Client) -> None:
    run = client.create_external_run("client-batches", experiment="client-tests", tags=["ext"])
    assert run["external"] is True and run["status"] == "running"
    rid = run["id"]
    for step in range(1000):
        value = math.nan if step == 500 else (math.inf if step == 600 else 1.0 / (step + 1))
        client.log_metrics(rid, {"loss": value, "accuracy": step / 1000}, step=step)
    # 2000 points with batch_size 250: the sender thread sends them without a flush
    partial = wait_for(
        lambda: client.metrics(rid, keys=["loss"], max_points=100_000).get("loss"), timeout=10, what="points sent"
    )
    assert 0 < len(partial["steps"]) <= 1000
    done = client.finish(rid)
    assert done["status"] == "succeeded"
    series = client.metrics(rid, max_points=100_000)
    assert sorted(series) == ["accuracy", "loss"]
    assert series["loss"]["steps"] == list(range(1000))
    assert series["accuracy"]["steps"] == list(range(1000))
    loss = series["loss"]["values"]
    assert math.isnan(loss[500]) and loss[600] == math.inf and loss[3] == pytest.approx(0.25)
    assert sum(1 for v in loss if math.isnan(v)) == 1


def test_log_points_is_idempotent_and_downsampled_read_keeps_spike(client: optiboard.Client) -> None:
    rid = client.create_external_run("client-idem", experiment="client-tests")["id"]
    pts = [("loss", s, 1.0) for s in range(30_000)]
    pts[12_345] = ("loss", 12_345, 50.0)
    assert client.log_points(rid, pts) == 30_000
    client.log_points(rid, [("loss", 7, 99.0)])  # a repeated step: ignored, first write wins
    full = client.metrics(rid, keys=["loss"], max_points=100_000)["loss"]
    assert len(full["steps"]) == 30_000 and full["values"][7] == 1.0
    small = client.metrics(rid, keys=["loss"], max_points=400)["loss"]
    assert 0 < len(small["steps"]) <= 400
    assert (12_345, 50.0) in zip(small["steps"], small["values"], strict=True)
    assert small["steps"][0] == 0 and small["steps"][-1] == 29_999
    client.finish(rid)


def test_errors_have_one_type_with_status(client: optiboard.Client, live_stack: Stack) -> None:
    with pytest.raises(optiboard.OptiboardError) as e:
        client.get_run(10_000_000)
    assert e.value.status == 404
    rid = client.create_external_run("client-errors", experiment="client-tests")["id"]
    client.finish(rid, "failed", error="boom")
    with pytest.raises(optiboard.OptiboardError) as e:
        client.log_points(rid, [("loss", 1, 1.0)])  # finished: the server refuses
    assert e.value.status == 409
    anonymous = optiboard.Client(live_stack.url, token="wrong")
    with pytest.raises(optiboard.OptiboardError) as e:
        anonymous.list_runs()
    assert e.value.status == 401
    anonymous.close()
    # the default 5 retries, with a short backoff: 0.5 s doubling waited ~15 s for the same answer
    offline = optiboard.Client("http://127.0.0.1:9", token="x", timeout=2, backoff_s=0.01)
    with pytest.raises(optiboard.OptiboardError) as e:
        offline.list_runs()
    assert e.value.status is None
    offline.close()


@pytest.mark.slow
def test_submit_wait_list_and_download(client: optiboard.Client, tmp_path: Path) -> None:
    run = client.submit(tiny_spec("client-submit", experiment="client-tests"))
    # the reply is read after the job is sent: a warm idle worker may have claimed it already
    assert run["status"] in ("queued", "running")
    done = client.wait(run["id"], timeout=300)
    assert done["status"] == "succeeded", done.get("error")
    assert any(r["id"] == run["id"] for r in client.list_runs(experiment="client-tests", limit=100))
    assert "loss" in client.metrics(run["id"])
    formats = {v["format"] for v in client.variants(run["id"])}
    assert {"keras", "tflite-float32"} <= formats
    path = client.download(run["id"], "tflite-float32", tmp_path / "model.tflite")
    assert path.stat().st_size > 1000 and path.read_bytes()[4:8] == b"TFL3"


def test_submit_with_control_queues_the_run_and_its_control(client: optiboard.Client) -> None:
    spec = {"name": "client control", "dataset": {"name": "digits"}, "techniques": [{"name": "qat"}]}
    run = client.submit(spec, control=True)
    twin = client.get_run(run["control_run_id"])
    assert twin["control_of_run_id"] == run["id"] and twin["name"] == "client control (control)"
    assert [r["id"] for r in client.list_runs(control_of=run["id"])] == [twin["id"]]
    client.cancel(run["id"])  # nothing here needs them trained; the control goes with its run
    assert client.get_run(twin["id"])["status"] == "cancelled"
    with pytest.raises(optiboard.OptiboardError) as refused:
        client.submit({"name": "no technique"}, control=True)
    assert refused.value.status == 422 and "control" in str(refused.value)
