"""Studies over HTTP: validation names the field, the detail's best/front are feasible-only by
default, and pause/resume/extend/stop move the study (409 where they cannot)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from backend.dispatch import studies as loop
from backend.store import runs
from backend.store.db import unit_of_work
from tests.factories import make_run, make_variant
from tests.studies.test_study_loop import RecordingQueue


def _baseline(client: TestClient) -> int:
    with unit_of_work(client.app.state.sessionmaker) as s:  # type: ignore[attr-defined]
        run = make_run(s, name="baseline", dataset={"name": "digits"}, model={"architecture": "mlp"})
        lease = runs.claim_run(s, run_id=run.id, worker="w")
        make_variant(s, run.id, "keras", accuracy=0.95, size_bytes=40_000)
        make_variant(s, run.id, "tflite-float32", accuracy=0.95, size_bytes=20_000)
        runs.finish_run(s, run_id=run.id, lease=lease, status="succeeded")
        return run.id


def _finish(client: TestClient, run_id: int, *, accuracy: float, size: int) -> None:
    with unit_of_work(client.app.state.sessionmaker) as s:  # type: ignore[attr-defined]
        lease = runs.claim_run(s, run_id=run_id, worker="w")
        make_variant(s, run_id, "tflite-int8", accuracy=accuracy, size_bytes=size)
        runs.finish_run(s, run_id=run_id, lease=lease, status="succeeded")


def _locs(r: Any) -> list[list[Any]]:
    assert r.status_code == 422, r.text
    return [d["loc"] for d in r.json()["detail"]]


def test_bad_studies_are_refused_naming_the_field(client: TestClient) -> None:
    base = _baseline(client)
    assert ["body", "objectives"] in _locs(
        client.post("/api/studies", json={"baseline_run_id": base, "objectives": ["accuracy"]})
    )
    assert ["body", "baseline_run_id"] in _locs(client.post("/api/studies", json={"baseline_run_id": 999}))
    assert ["body", "strategy"] in _locs(client.post("/api/studies", json={"baseline_run_id": base, "strategy": "x"}))
    assert client.get("/api/studies/12345").status_code == 404
    assert client.get("/api/studies").json()["count"] == 0


def test_a_study_names_exactly_one_baseline(client: TestClient) -> None:
    base = _baseline(client)
    for body in ({}, {"baseline_run_id": base, "baseline_model_id": 1, "dataset": {"name": "digits"}}):
        r = client.post("/api/studies", json=body)
        assert _locs(r) == [["body", "baseline_run_id"]]
        assert "baseline_run_id" in r.text and "baseline_model_id" in r.text  # the message names both
    assert _locs(client.post("/api/studies", json={"baseline_model_id": 1})) == [["body", "dataset"]]
    r = client.post("/api/studies", json={"baseline_model_id": 77, "dataset": {"name": "digits"}})
    assert _locs(r) == [["body", "baseline_model_id"]] and "model 77 does not exist" in r.text
    assert client.get("/api/studies").json()["count"] == 0  # nothing stored, no baseline run made


def test_a_study_shows_feasible_best_and_front_and_obeys_its_buttons(client: TestClient) -> None:
    base = _baseline(client)
    r = client.post(
        "/api/studies",
        json={
            "name": "small",
            "baseline_run_id": base,
            "budget": {"max_trials": 3},
            "search_space": {"chains": ["pruning"]},
        },
    )
    assert r.status_code == 201, r.text
    study = r.json()
    assert study["status"] == "queued" and study["bar"] == 0.94 and study["reference"]["format"] == "tflite-float32"
    sid = study["id"]
    loop.tick(client.app.state.sessionmaker, RecordingQueue(), slots=lambda: 3)  # type: ignore[attr-defined,arg-type]
    trials = client.get(f"/api/studies/{sid}").json()["trials"]
    assert [t["state"] for t in trials] == ["running"] * 3
    assert trials[0]["recipe"]["chain"] == "pruning" and "pruning.target_sparsity" in trials[0]["recipe"]
    _finish(client, trials[0]["run_id"], accuracy=0.945, size=4_000)  # feasible
    _finish(client, trials[1]["run_id"], accuracy=0.90, size=1_000)  # smaller but infeasible
    _finish(client, trials[2]["run_id"], accuracy=0.96, size=8_000)  # feasible, more accurate
    loop.tick(client.app.state.sessionmaker, RecordingQueue(), slots=lambda: 3)  # type: ignore[attr-defined,arg-type]
    detail = client.get(f"/api/studies/{sid}").json()
    assert detail["status"] == "finished" and detail["trial_counts"]["feasible"] == 2
    best = {b["objective"]: b for b in detail["best"]}
    assert best["gzip_bytes"]["number"] == 0 and best["accuracy"]["number"] == 2
    assert best["gzip_bytes"]["download"].startswith("/api/variants/")
    assert sorted(detail["front"]) == [0, 2] and detail["closest_miss"] is None
    assert detail["hypervolume"][-1]["hypervolume"] > 0 and detail["budget"]["left"]["trials"] == 0
    every = client.get(f"/api/studies/{sid}", params={"include_infeasible": "true"}).json()
    assert {b["objective"]: b["number"] for b in every["best"]}["gzip_bytes"] == 1
    assert 1 in every["front"]

    # The export shows feasible trials only unless asked; every trial's run names its study.
    r = client.get(f"/api/studies/{sid}/trials.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f"optiboard-study-{sid}-trials.csv" in r.headers["content-disposition"]
    lines = r.text.splitlines()
    header = lines[0].split(",")
    assert header[:4] == ["number", "run_id", "state", "feasible"]
    assert {"gzip_bytes", "accuracy", "chain", "export", "pruning.target_sparsity"} <= set(header)
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    assert [row["number"] for row in rows] == ["0", "2"] and rows[0]["gzip_bytes"] == "4000"
    assert rows[0]["chain"] == "pruning" and rows[1]["accuracy"] == "0.96"
    every_csv = client.get(f"/api/studies/{sid}/trials.csv", params={"include_infeasible": "true"}).text
    assert [line.split(",")[0] for line in every_csv.splitlines()[1:]] == ["0", "1", "2"]
    assert ["query", "include_infeasible"] in _locs(
        client.get(f"/api/studies/{sid}/trials.csv", params={"include_infeasible": "maybe"})
    )
    assert client.get("/api/studies/12345/trials.csv").status_code == 404
    run = client.get(f"/api/runs/{trials[1]['run_id']}").json()
    assert run["study_id"] == sid and run["trial_number"] == 1
    listed = client.get("/api/runs", params={"study_id": sid}).json()
    assert listed["count"] == 3 and {r["trial_number"] for r in listed["data"]} == {0, 1, 2}
    assert client.get("/api/runs", params={"study_id": sid + 1}).json()["count"] == 0
    assert ["query", "study_id"] in _locs(client.get("/api/runs", params={"study_id": 0}))
    assert client.get(f"/api/runs/{base}").json()["study_id"] is None

    assert client.post(f"/api/studies/{sid}/pause").status_code == 409  # finished
    r = client.post(f"/api/studies/{sid}/extend", json={"trials": 2})
    assert r.status_code == 200 and r.json()["status"] == "running" and r.json()["budget"]["limits"]["max_trials"] == 5
    assert ["body", "trials"] in _locs(client.post(f"/api/studies/{sid}/extend", json={"trials": -1}))
    assert ["body", "trials"] in _locs(client.post(f"/api/studies/{sid}/extend", json={}))  # adds nothing
    assert client.post(f"/api/studies/{sid}/pause").json()["status"] == "paused"
    assert client.post(f"/api/studies/{sid}/resume").json()["status"] == "running"
    assert client.post(f"/api/studies/{sid}/stop").json()["status"] == "stopped"
    assert client.post(f"/api/studies/{sid}/resume").status_code == 409
    assert client.get("/api/studies").json()["data"][0]["trial_counts"]["complete"] == 3


def test_nothing_feasible_shows_the_closest_miss(client: TestClient) -> None:
    base = _baseline(client)
    sid = client.post("/api/studies", json={"baseline_run_id": base, "budget": {"max_trials": 2}}).json()["id"]
    loop.tick(client.app.state.sessionmaker, RecordingQueue(), slots=lambda: 2)  # type: ignore[attr-defined,arg-type]
    trials = client.get(f"/api/studies/{sid}").json()["trials"]
    _finish(client, trials[0]["run_id"], accuracy=0.80, size=1_000)
    _finish(client, trials[1]["run_id"], accuracy=0.93, size=2_000)
    loop.tick(client.app.state.sessionmaker, RecordingQueue(), slots=lambda: 2)  # type: ignore[attr-defined,arg-type]
    detail = client.get(f"/api/studies/{sid}").json()
    assert detail["best"] == [] and detail["front"] == []
    assert detail["closest_miss"]["number"] == 1 and detail["closest_miss"]["constraint_metric"] == 0.93
