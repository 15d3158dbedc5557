"""Same-budget controls over HTTP (issue 19 item 2), on SQLite and PostgreSQL: a run submitted
with `control: true` gets its twin in the same transaction, both queued, linked both ways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.core.settings import Settings
from tests.conftest import make_token

PRUNING = {
    "name": "prune",
    "experiment": "controls",
    "dataset": {"name": "digits"},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.002}, "epochs": 2, "seed": 5},
    "techniques": [{"name": "pruning", "target_sparsity": 0.75}, {"name": "qat", "epochs": 2}],
    "exports": ["float32", "int8"],
    "control": True,
}


@pytest.fixture
def settings(db_url: str, tmp_path: Path, redis_url: str) -> Settings:
    return Settings(data_dir=tmp_path, database_url=db_url, redis_url=redis_url)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """The real app on the parametrised backend (db_url: SQLite, then PostgreSQL), real Redis."""
    token = make_token(settings.db_url)
    with TestClient(create_app(settings, maintenance=False)) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def test_a_run_with_control_gets_a_linked_twin_queued_with_it(api: TestClient, settings: Settings) -> None:
    r = api.post("/api/runs", json=PRUNING)
    assert r.status_code == 201, r.text
    run = r.json()
    twin_id = run["control_run_id"]
    assert twin_id is not None and run["control_of_run_id"] is None
    twin = api.get(f"/api/runs/{twin_id}").json()  # the hot read path
    assert twin["control_of_run_id"] == run["id"] and twin["control_run_id"] is None
    assert twin["name"] == "prune (control)" and twin["status"] == "queued" and twin["experiment"] == "controls"
    assert twin["spec"]["control"] is False and run["spec"]["control"] is True
    assert twin["spec"]["techniques"] == [
        {"name": "fine_tuning", "epochs": None, "learning_rate": None},  # pruning's own defaults, mirrored
        {"name": "fine_tuning", "epochs": 2, "learning_rate": pytest.approx(2e-4)},  # QAT's 0.1 × rate
    ]
    for key in ("dataset", "model", "training", "exports", "measurement"):
        assert twin["spec"][key] == run["spec"][key], key
    assert api.get(f"/api/runs/{run['id']}").json()["control_run_id"] == twin_id
    # both jobs were sent, after the commit
    assert redis_lib.Redis.from_url(settings.broker_url).llen("train") == 2
    # the list shows both links, and filters a run's control
    listed = {r["id"]: r for r in api.get("/api/runs", params={"experiment": "controls"}).json()["data"]}
    assert listed[run["id"]]["control_run_id"] == twin_id and listed[twin_id]["control_of_run_id"] == run["id"]
    only = api.get("/api/runs", params={"control_of": run["id"]}).json()
    assert [r["id"] for r in only["data"]] == [twin_id]
    # cancelling the run cancels its control; the retry gets a new control, not a second live one
    assert api.post(f"/api/runs/{run['id']}/cancel").json()["status"] == "cancelled"
    gone = api.get(f"/api/runs/{twin_id}").json()
    assert gone["status"] == "cancelled" and gone["error"] == f"cancelled with run {run['id']}, whose control it is"
    retry = api.post(f"/api/runs/{run['id']}/retry").json()
    live = [
        r for r in api.get("/api/runs", params={"experiment": "controls"}).json()["data"] if r["status"] == "queued"
    ]
    assert sorted(r["id"] for r in live) == sorted([retry["id"], retry["control_run_id"]])


@pytest.mark.parametrize(
    "spec",
    [
        {"control": True},  # no technique
        {"control": True, "techniques": [{"name": "fine_tuning", "epochs": 1}]},
        {"control": True, "external": True, "techniques": [{"name": "pruning"}]},
        {"control": True, "kind": "optimize", "parent_run_id": 1, "exports": ["int8"]},
    ],
)
def test_control_without_a_technique_is_refused_naming_the_field(api: TestClient, spec: dict[str, Any]) -> None:
    r = api.post("/api/runs", json={"name": "x", **spec})
    assert r.status_code == 422
    assert [d["loc"] for d in r.json()["detail"]] == [["body", "control"]]
    assert api.get("/api/runs").json()["count"] == 0


def test_a_sweep_gives_each_point_its_own_control_and_a_retry_a_new_one(api: TestClient) -> None:
    body = {"base": {**PRUNING, "techniques": [{"name": "pruning"}]}, "grid": {"training.seed": [0, 1]}}
    assert api.post("/api/sweeps/preview", json=body).json()["count"] == 4  # 2 points, each with its control
    r = api.post("/api/sweeps", json=body)
    assert r.status_code == 201, r.text
    runs = r.json()["data"]
    assert len(runs) == 4
    pairs = [(a, b) for a in runs for b in runs if b["control_of_run_id"] == a["id"]]
    assert len(pairs) == 2
    for run, twin in pairs:  # the twin has its run's seed: one control per seed of a group
        assert twin["spec"]["training"]["seed"] == run["spec"]["training"]["seed"]
        assert api.get(f"/api/runs/{run['id']}").json()["control_run_id"] == twin["id"]
    # a cancelled control retried is its run's control from then on
    run, twin = pairs[1]
    api.post(f"/api/runs/{twin['id']}/cancel")
    again = api.post(f"/api/runs/{twin['id']}/retry").json()
    assert again["control_of_run_id"] == run["id"] and again["retry_of_run_id"] == twin["id"]
    assert again["control_run_id"] is None  # a control asks for none of its own
    assert api.get(f"/api/runs/{run['id']}").json()["control_run_id"] == again["id"]
    run = pairs[0][0]
    api.post(f"/api/runs/{run['id']}/cancel")
    retry = api.post(f"/api/runs/{run['id']}/retry").json()
    assert retry["control_run_id"] not in (None, pairs[0][1]["id"])
    assert api.get(f"/api/runs/{retry['control_run_id']}").json()["control_of_run_id"] == retry["id"]


def test_repeats_with_control_give_each_seed_its_control(api: TestClient) -> None:
    """A seed group of 3 asked with control=true: 3 members, each with a control of its own seed;
    the controls form a group of their own (the same recipe without the technique)."""
    r = api.post("/api/runs", json={**PRUNING, "techniques": [{"name": "pruning"}], "repeats": 3})
    assert r.status_code == 201, r.text
    members = [api.get(f"/api/runs/{i}").json() for i in r.json()["group_run_ids"]]
    assert len(members) == 3 and all(m["control_of_run_id"] is None for m in members)
    twins = [api.get(f"/api/runs/{m['control_run_id']}").json() for m in members]
    assert (
        [t["spec"]["training"]["seed"] for t in twins] == [m["spec"]["training"]["seed"] for m in members] == [5, 6, 7]
    )
    assert len({m["group_key"] for m in members}) == 1 and members[0]["group_size"] == 3
    assert len({t["group_key"] for t in twins}) == 1 and twins[0]["group_key"] != members[0]["group_key"]
    assert twins[0]["group_size"] == 3
    assert api.get("/api/runs", params={"experiment": "controls"}).json()["count"] == 6
