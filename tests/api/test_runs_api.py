"""Submitting runs over HTTP: validation names the field, nothing half-written, jobs sent after commit."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
import redis as redis_lib
from fastapi.testclient import TestClient

from backend.core.settings import Settings


def run_count(client: TestClient) -> int:
    return client.get("/api/runs").json()["count"]


@pytest.mark.parametrize(
    ("spec", "loc"),
    [
        ({"name": "x", "bogus": 1}, ["body", "bogus"]),
        ({"training": {"epochs": -1}}, ["body", "training", "epochs"]),
        ({"dataset": {"name": "imagenet"}}, ["body", "dataset", "name"]),
        ({"training": {"batch_size": 10**9}}, ["body", "training", "batch_size"]),
        ({"training": {"epochs": "many"}}, ["body", "training", "epochs"]),
        ({"name": 42}, ["body", "name"]),
        ({"exports": ["float32", "float32"]}, ["body", "exports"]),
        (
            {"techniques": [{"name": "pruning", "target_sparsity": 1.5}]},
            ["body", "techniques", 0, "pruning", "target_sparsity"],
        ),
        ({"dataset": {"name": "digits", "path": "/etc/passwd"}}, ["body", "dataset", "path"]),
        # distillation's schedules and the run's augmentation name their field
        (
            {"techniques": [{"name": "distillation", "teacher_run_id": 1, "alpha_schedule": "cosine"}]},
            ["body", "techniques", 0, "distillation", "alpha_end"],
        ),
        (
            {"techniques": [{"name": "distillation", "teacher_run_id": 1, "temperature_end": 2}]},
            ["body", "techniques", 0, "distillation", "temperature_end"],
        ),
        ({"training": {"augmentation": {"shift": 0.9}}}, ["body", "training", "augmentation", "shift"]),
        ({"training": {"mixup_alpha": -1}}, ["body", "training", "mixup_alpha"]),
        # set where it does not apply: it would be stored and silently ignored
        ({"training": {"optimizer": {"name": "adam", "momentum": 0.9}}}, ["body", "training", "optimizer", "momentum"]),
        (
            {"training": {"schedule": {"name": "constant", "step_epochs": 3}}},
            ["body", "training", "schedule", "step_epochs"],
        ),
        # the zoo: ImageNet weights only at the alphas Keras publishes; no alpha on ResNet50
        (
            {"model": {"architecture": "mobilenet_v2", "weights": "imagenet", "width_multiplier": 0.6}},
            ["body", "model", "width_multiplier"],
        ),
        ({"model": {"architecture": "resnet50", "width_multiplier": 0.5}}, ["body", "model", "width_multiplier"]),
        ({"model": {"architecture": "seed_cnn", "input_size": 64}}, ["body", "model", "input_size"]),
        ({"model": {"weights": "imagenet"}}, ["body", "model", "weights"]),
        ({"model": {"architecture": "efficientnet_b0", "input_size": 16}}, ["body", "model", "input_size"]),
    ],
)
def test_bad_spec_gets_422_naming_the_field_and_writes_nothing(
    client: TestClient, spec: dict[str, Any], loc: list[Any], app_settings: Settings
) -> None:
    before = run_count(client)
    r = client.post("/api/runs", json=spec)
    assert r.status_code == 422, r.text
    assert loc in [e["loc"] for e in r.json()["detail"]], r.json()
    assert run_count(client) == before
    assert redis_lib.Redis.from_url(app_settings.broker_url).llen("train") == 0


def test_references_are_checked_at_submit(client: TestClient) -> None:
    r = client.post("/api/runs", json={"kind": "optimize", "parent_run_id": 999, "exports": ["int8"]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "parent_run_id"]
    r = client.post("/api/runs", json={"techniques": [{"name": "distillation", "teacher_run_id": 5}]})
    assert r.status_code == 422 and "teacher" in r.json()["detail"][0]["msg"]
    queued = client.post("/api/runs", json={"name": "t"}).json()["id"]
    r = client.post("/api/runs", json={"techniques": [{"name": "distillation", "teacher_run_id": queued}]})
    assert r.status_code == 422 and "not a finished" in r.json()["detail"][0]["msg"]
    assert run_count(client) == 1


def test_a_teacher_checkpoint_is_checked_at_submit(client: TestClient, app_settings: Settings) -> None:
    """teacher_epoch needs a teacher that kept a checkpoint after that epoch: else a 422 naming
    teacher_epoch, saying which epochs it kept."""
    from backend.store.db import make_engine, make_sessionmaker, unit_of_work
    from backend.store.models import Run
    from tests.factories import make_variant

    plain = client.post("/api/runs", json={"name": "plain", "training": {"epochs": 6}}).json()["id"]
    kept = client.post(
        "/api/runs", json={"name": "kept", "training": {"epochs": 6, "checkpoint_every_epochs": 2}}
    ).json()["id"]
    with unit_of_work(make_sessionmaker(make_engine(app_settings.db_url))) as session:
        for run_id in (plain, kept):
            session.get(Run, run_id).status = "succeeded"  # type: ignore[union-attr]
            make_variant(session, run_id, "keras", accuracy=0.9, size_bytes=1000)

    def distil(teacher: int, epoch: int) -> Any:
        technique = {"name": "distillation", "teacher_run_id": teacher, "teacher_epoch": epoch}
        return client.post("/api/runs", json={"model": {"width_multiplier": 0.5}, "techniques": [technique]})

    loc = ["body", "techniques", 0, "teacher_epoch"]
    r = distil(plain, 2)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc
    assert "kept no checkpoints" in r.json()["detail"][0]["msg"]
    r = distil(kept, 3)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc
    assert "it kept epochs 2, 4, 6" in r.json()["detail"][0]["msg"]
    r = distil(kept, 4)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["techniques"][0]["teacher_epoch"] == 4


def test_the_summary_names_mixed_precision(client: TestClient) -> None:
    """Runs trained in 16-bit compute must be told apart from float32 ones in every list."""
    plain = client.post("/api/runs", json={"name": "f32"}).json()
    mixed = client.post("/api/runs", json={"name": "mp", "training": {"pipeline": {"mixed_precision": True}}}).json()
    assert "mixed-precision" not in plain["summary"]
    assert mixed["summary"].startswith("seed_cnn adam mixed-precision · ")
    listed = {r["name"]: r["summary"] for r in client.get("/api/runs").json()["data"]}
    assert listed["mp"] == mixed["summary"]


def test_submit_queues_after_commit(client: TestClient, app_settings: Settings) -> None:
    r = client.post("/api/runs", json={"name": "seed", "experiment": "e", "tags": ["a"]})
    assert r.status_code == 201
    run = r.json()
    assert run["status"] == "queued" and run["experiment"] == "e" and run["summary"].startswith("seed_cnn adam")
    broker = redis_lib.Redis.from_url(app_settings.broker_url)
    assert broker.llen("train") == 1
    assert client.get(f"/api/runs/{run['id']}").json()["id"] == run["id"]
    assert client.get("/api/runs", params={"status": "queued", "experiment": "e"}).json()["count"] == 1
    assert client.get("/api/experiments").json()["data"][0]["run_count"] == 1


def test_cancel_delete_and_edit(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={"name": "c"}).json()["id"]
    assert client.delete(f"/api/runs/{run_id}").status_code == 409  # not terminal yet
    assert client.post(f"/api/runs/{run_id}/cancel").json()["status"] == "cancelled"
    assert client.post(f"/api/runs/{run_id}/cancel").status_code == 409
    edited = client.patch(f"/api/runs/{run_id}", json={"tags": ["keep"], "notes": "n"}).json()
    assert (edited["tags"], edited["notes"]) == (["keep"], "n")
    retry = client.post(f"/api/runs/{run_id}/retry")
    assert retry.status_code == 201 and retry.json()["status"] == "queued" and retry.json()["id"] != run_id
    # The retry and the original link to each other: the retry names it, a filter lists retries.
    assert retry.json()["retry_of_run_id"] == run_id
    assert client.get(f"/api/runs/{retry.json()['id']}").json()["retry_of_run_id"] == run_id
    assert [r["id"] for r in client.get("/api/runs", params={"retry_of": run_id}).json()["data"]] == [
        retry.json()["id"]
    ]
    assert client.get("/api/runs", params={"retry_of": retry.json()["id"]}).json()["count"] == 0
    assert client.get(f"/api/runs/{run_id}").json()["retry_of_run_id"] is None
    assert client.delete(f"/api/runs/{run_id}").status_code == 204
    assert client.get(f"/api/runs/{run_id}").status_code == 404


def test_sweep_creates_one_run_per_point_or_nothing(client: TestClient) -> None:
    body = {
        "base": {"name": "s", "experiment": "sweep"},
        "grid": {"training.optimizer.learning_rate": [0.001, 0.01], "model.width_multiplier": [0.5, 1.0]},
    }
    assert client.post("/api/sweeps/preview", json=body).json()["count"] == 4
    r = client.post("/api/sweeps", json=body)
    assert r.status_code == 201 and r.json()["count"] == 4
    lrs = sorted(run["spec"]["training"]["optimizer"]["learning_rate"] for run in r.json()["data"])
    assert lrs == [0.001, 0.001, 0.01, 0.01]
    assert "s [learning_rate=0.001, width_multiplier=0.5]" in {run["name"] for run in r.json()["data"]}
    sets = {"base": {"name": "e"}, "grid": {"exports": [["float16", "int8"], ["float32"]]}}
    made = client.post("/api/sweeps", json=sets)
    assert made.status_code == 201, made.text
    names = sorted(run["name"] for run in made.json()["data"])
    assert names == ["e [exports=float16+int8]", "e [exports=float32]"]  # not Python's "['float16', 'int8']"
    bad = {"base": {"name": "s"}, "grid": {"training.epochs": [1, -3]}}
    r = client.post("/api/sweeps", json=bad)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "grid", "training.epochs"]
    assert run_count(client) == 6
    sample = {**body, "random": {"budget": 3, "seed": 1}}
    assert client.post("/api/sweeps/preview", json=sample).json()["count"] == 3


def test_external_run_takes_metric_batches(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={"name": "ext", "external": True}).json()["id"]
    points = [{"key": "loss", "step": i, "value": 1.0 / (i + 1)} for i in range(100)]
    points.append({"key": "loss", "step": 100, "value": None})
    assert client.post(f"/api/runs/{run_id}/metrics", json={"points": points}).json() == {
        "accepted": 101,
        "duplicates": 0,
        "replayed": False,
    }
    assert client.post(f"/api/runs/{run_id}/metrics", json={"points": points[:10]}).json() == {
        "accepted": 0,
        "duplicates": 10,
        "replayed": False,
    }  # already stored: nothing new
    m = client.get(f"/api/runs/{run_id}/metrics", params={"after_step": 95}).json()
    assert m["series"]["loss"]["steps"] == [96, 97, 98, 99, 100]
    assert m["series"]["loss"]["values"][-1] == "NaN" and m["last_step"] == 100
    assert client.post(f"/api/runs/{run_id}/finish", json={"status": "succeeded"}).json()["status"] == "succeeded"
    assert client.post(f"/api/runs/{run_id}/metrics", json={"points": points[:1]}).status_code == 409
    worker_run = client.post("/api/runs", json={"name": "w"}).json()["id"]
    assert client.post(f"/api/runs/{worker_run}/metrics", json={"points": points[:1]}).status_code == 409


def test_an_external_run_is_headlined_and_sorted_by_its_final_logged_accuracy(client: TestClient) -> None:
    def external(name: str, series: dict[str, list[float | None]]) -> int:
        rid = client.post("/api/runs", json={"name": name, "external": True}).json()["id"]
        points = [{"key": k, "step": i, "value": v} for k, vs in series.items() for i, v in enumerate(vs)]
        body = json.dumps({"points": points})  # writes Infinity as the bare literal, as json.dumps does
        r = client.post(f"/api/runs/{rid}/metrics", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        assert client.post(f"/api/runs/{rid}/finish", json={"status": "succeeded"}).status_code == 200
        return rid

    # validation accuracy wins over training accuracy; the last step's value, not the best one
    val = external("val", {"accuracy": [0.5, 0.99], "val_accuracy": [0.9, 0.7], "loss": [2.0, float("inf")]})
    sparse = external("sparse", {"sparse_categorical_accuracy": [0.1, 0.8]})
    none = external("loss only", {"loss": [1.0, 0.5]})
    running = client.post("/api/runs", json={"name": "still running", "external": True}).json()["id"]
    one = client.get(f"/api/runs/{val}").json()
    assert one["final_metrics"] == {"accuracy": 0.99, "val_accuracy": 0.7, "loss": "Infinity"}
    assert one["headline"] == {
        "format": "logged",
        "accuracy": 0.7,
        "accuracy_key": "val_accuracy",
        "size_bytes": None,
        "gzip_bytes": None,
        "latency_p50_ms": None,
        "latency_p90_ms": None,
        "latency_unstable": None,
    }
    listed = {r["id"]: r for r in client.get("/api/runs").json()["data"]}
    assert listed[val]["headline"] == one["headline"]  # the list and the hot read agree
    assert listed[sparse]["headline"]["accuracy_key"] == "sparse_categorical_accuracy"
    assert listed[none]["headline"] is None and listed[running]["headline"] is None
    by_accuracy = [r["id"] for r in client.get("/api/runs", params={"sort": "-accuracy"}).json()["data"]]
    assert by_accuracy[:2] == [sparse, val] and set(by_accuracy[2:]) == {none, running}


def test_metric_bodies_parse_infinity_literals_and_refuse_malformed_json(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={"name": "ext", "external": True}).json()["id"]
    url, h = f"/api/runs/{run_id}/metrics", {"Content-Type": "application/json"}
    body = (
        b'{"points":[{"key":"a","step":0,"value":Infinity},{"key":"a","step":1,"value":-Infinity},'
        b'{"key":"a","step":2,"value":NaN},{"key":"a","step":3,"value":1.5}]}'
    )  # what json.dumps writes
    assert client.post(url, content=body, headers=h).json()["accepted"] == 4
    m = client.get(url).json()["series"]["a"]
    assert m["values"] == ["Infinity", "-Infinity", "NaN", 1.5]
    bad = client.post(url, content=b'{"points":[{"key":"a","step":4,', headers=h)
    assert bad.status_code == 422 and bad.json()["detail"][0]["type"] == "json_invalid"
    wrong = client.post(url, content=b'{"points":[{"key":"a","step":"x","value":1}]}', headers=h)
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "points", 0, "step"]
    assert client.get(url).json()["last_step"] == 3  # nothing of the refused bodies was stored


def test_reading_one_run_gives_the_same_json_as_the_other_endpoints(client: TestClient) -> None:
    ext = client.post("/api/runs", json={"name": "ext <i>", "external": True, "tags": ["a"], "notes": "é"}).json()
    client.post(f"/api/runs/{ext['id']}/finish", json={"status": "failed", "error": "boom"})
    queued = client.post("/api/runs", json={"name": "q"}).json()
    listed = {r["id"]: r for r in client.get("/api/runs").json()["data"]}
    for run_id in (ext["id"], queued["id"]):
        one = client.get(f"/api/runs/{run_id}").json()  # the hot path: plain SQL, orjson
        assert list(one) == list(listed[run_id])
        assert {k: v for k, v in one.items() if k != "duration_seconds"} == {
            k: v for k, v in listed[run_id].items() if k != "duration_seconds"
        }
    assert client.get("/api/runs/999").status_code == 404


def _npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_dataset_upload_validated_and_usable(client: TestClient, app_settings: Settings) -> None:
    rng = np.random.default_rng(0)
    good = _npz(
        x_train=rng.random((40, 8, 8), dtype=np.float32),
        y_train=rng.integers(0, 3, 40),
        x_test=rng.random((10, 8, 8), dtype=np.float32),
        y_test=rng.integers(0, 3, 10),
    )
    r = client.post("/api/datasets", files={"file": ("mine.npz", good)}, data={"name": "mine"})
    assert r.status_code == 201, r.text
    ds = r.json()
    stored = list(app_settings.uploads.glob("*.npz"))
    assert len(stored) == 1 and "mine" not in stored[0].name  # server-chosen name
    spec = {"name": "u", "dataset": {"name": "upload", "upload_id": ds["id"]}}
    assert client.post("/api/runs", json=spec).status_code == 201
    r = client.post("/api/datasets", files={"file": ("bad.npz", b"not a zip")})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "file"]
    r = client.post("/api/datasets", files={"file": ("big.npz", b"0" * 300_000)})
    assert r.status_code == 413
    assert len(list(app_settings.uploads.iterdir())) == 1
    r = client.post("/api/runs", json={"dataset": {"name": "upload", "upload_id": 999}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "dataset", "upload_id"]


def test_auth_required(client: TestClient) -> None:
    anonymous = {"Authorization": ""}
    assert client.get("/api/runs", headers=anonymous).status_code == 401
    assert client.post("/api/runs", json={}, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/healthz", headers=anonymous).status_code == 200
    assert run_count(client) == 0


def test_arithmetic_and_starting_point_checks_name_the_field(client: TestClient) -> None:
    r = client.post("/api/runs", json={"techniques": [{"name": "clustering", "number_of_clusters": 60000}]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "techniques", 0, "number_of_clusters"]
    assert "weights" in r.json()["detail"][0]["msg"]
    r = client.post("/api/runs", json={"model": {"init_from_run_id": 77}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "model", "init_from_run_id"]
    assert run_count(client) == 0


@pytest.mark.parametrize(
    ("spec", "loc"),
    [
        ({"kind": "optimize", "exports": ["int8"]}, ["body", "parent_run_id"]),
        (
            {"training": {"optimizer": {"name": "adam", "nesterov": True}}},
            ["body", "training", "optimizer", "nesterov"],
        ),
        ({"techniques": [{"name": "qat"}, {"name": "pruning"}]}, ["body", "techniques"]),
        ({"dataset": {"name": "upload"}}, ["body", "dataset", "upload_id"]),
    ],
)
def test_cross_field_rules_name_the_field(client: TestClient, spec: dict[str, Any], loc: list[Any]) -> None:
    r = client.post("/api/runs", json=spec)
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [loc], r.json()
    assert "input" not in r.json()["detail"][0]


def test_the_vocabulary_endpoint_serves_the_shared_definitions(client: TestClient) -> None:
    from runspec import vocabulary

    r = client.get("/api/vocabulary")
    assert r.status_code == 200
    body = r.json()
    assert body["statuses"] == ["queued", "running", "succeeded", "failed", "cancelled"]
    assert set(body["terminal_statuses"]) == {"succeeded", "failed", "cancelled"}
    assert body["export_formats"] == list(vocabulary.EXPORT_FORMATS)
    assert body["variant_formats"] == ["keras"] + [f"tflite-{f}" for f in body["export_formats"]] + ["uploaded"]
    assert body["max_id"] == 2**31 - 1
    # the study page reads which studies can still ask for trials (and be paused) from here
    assert body["study_statuses"] == ["queued", "running", "paused", "stopped", "finished", "failed"]
    assert body["active_study_statuses"] == ["queued", "running", "paused"]
    assert client.get("/api/vocabulary", headers={"Authorization": ""}).status_code == 401


@pytest.mark.parametrize(
    ("spec", "loc"),
    [
        ({"dataset": {"name": "upload", "upload_id": 2**31}}, ["body", "dataset", "upload_id"]),
        ({"kind": "optimize", "parent_run_id": 2**31, "exports": ["int8"]}, ["body", "parent_run_id"]),
        (
            {"techniques": [{"name": "distillation", "teacher_run_id": 2**31}]},
            ["body", "techniques", 0, "distillation", "teacher_run_id"],
        ),
    ],
)
def test_spec_ids_beyond_the_id_bound_are_refused_at_the_field(
    client: TestClient, spec: dict[str, Any], loc: list[Any]
) -> None:
    r = client.post("/api/runs", json={"name": "big", **spec})
    assert r.status_code == 422
    assert loc in [e["loc"] for e in r.json()["detail"]], r.json()


def test_compare_names_a_bad_baseline_or_run_list_instead_of_guessing(client: TestClient) -> None:
    ext = client.post("/api/runs", json={"name": "ext", "external": True}).json()["id"]
    other = client.post("/api/runs", json={"name": "other", "external": True}).json()["id"]
    for path in ("/api/compare", "/api/compare.csv", "/api/compare.json"):
        r = client.get(path, params={"runs": f"{ext},{other}", "baseline": 999})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "baseline"], (path, r.text)
        assert "not among the compared runs" in r.json()["detail"][0]["msg"]
        r = client.get(path, params={"runs": f"{ext},{other}", "baseline": ext})
        assert r.status_code == 422 and "no measured model" in r.json()["detail"][0]["msg"], (path, r.text)
    for raw in ("abc", "1;2", "1,,2", "99999999999"):
        r = client.get("/api/compare", params={"runs": raw})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "runs"], raw
        assert "comma-separated run ids" in r.json()["detail"][0]["msg"] or "1 to" in r.json()["detail"][0]["msg"]
        assert "\\d" not in r.text  # the message, not the pattern behind it
    assert client.get("/api/compare", params={"runs": f" {ext} , {other} ,"}).status_code == 200
