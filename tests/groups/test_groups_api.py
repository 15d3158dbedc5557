"""Seed groups through the API on SQLite and PostgreSQL: repeats create a group, the runs list
and a run read name it, and /api/compare?groups=true aggregates it with 95 % intervals and
Welch differences against the baseline group (and so do its CSV, JSON and HTML exports)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.core.settings import Settings
from backend.store import metrics, runs
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from backend.store.intervals import mean_interval, welch_difference
from tests.conftest import make_token
from tests.factories import make_variant
from tests.stack import tiny_spec


@pytest.fixture
def client(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, database_url=db_url, redis_url=redis_url)
    with TestClient(create_app(settings, maintenance=False)) as c:
        c.headers["Authorization"] = f"Bearer {make_token(db_url)}"
        yield c


def _finish(db_url: str, accuracies: dict[int, float], size: dict[int, int]) -> None:
    """Each run claimed, given a float32 and an int8 variant and a loss curve, and finished."""
    engine = make_engine(db_url)
    with unit_of_work(make_sessionmaker(engine)) as s:
        for run_id, acc in accuracies.items():
            lease = runs.claim_run(s, run_id=run_id, worker="w@h")
            assert lease
            make_variant(s, run_id, "tflite-float32", accuracy=acc, size_bytes=size[run_id], latency_p90_ms=0.2)
            make_variant(s, run_id, "tflite-int8", accuracy=acc - 0.01, size_bytes=size[run_id] // 4)
            pts = [metrics.Point("loss", step, 1.0 / (step + 1) + acc / 100, 0.0) for step in range(0, 50, 5)]
            metrics.log_batch(s, run_id=run_id, points=pts)
            assert runs.finish_run(s, run_id=run_id, lease=lease, status="succeeded")
    engine.dispose()


def test_repeats_make_a_group_that_compare_aggregates(client: TestClient, db_url: str) -> None:
    created = client.post("/api/runs", json=tiny_spec("base", repeats=3, training={"epochs": 2, "seed": 5}))
    assert created.status_code == 201, created.text
    body = created.json()
    ids = body["group_run_ids"]
    assert len(ids) == 3 and body["id"] == ids[0]  # the first run, as before, plus every id
    assert body["group_size"] == 3 and body["name"] == "base [seed=5]"
    other = client.post("/api/runs", json=tiny_spec("wider", repeats=2, model={"width_multiplier": 1.5})).json()
    single = client.post("/api/runs", json=tiny_spec("once", model={"width_multiplier": 0.5})).json()
    assert single["group_run_ids"] == [single["id"]] and single["group_size"] == 1
    others = other["group_run_ids"]

    seeds = [client.get(f"/api/runs/{i}").json() for i in ids]  # the hot read
    assert [r["spec"]["training"]["seed"] for r in seeds] == [5, 6, 7]
    assert {r["spec"]["dataset"]["seed"] for r in seeds} == {0}
    assert {r["group_key"] for r in seeds} == {body["group_key"]} and {r["group_size"] for r in seeds} == {3}
    assert all(r["spec"]["repeats"] == 1 for r in seeds)
    assert other["group_key"] != body["group_key"]
    listed = client.get("/api/runs", params={"group": body["group_key"]}).json()
    assert listed["count"] == 3 and {r["id"] for r in listed["data"]} == set(ids)
    assert {r["group_size"] for r in client.get("/api/runs").json()["data"]} == {1, 2, 3}
    assert client.get("/api/runs", params={"group": "nope"}).status_code == 422

    acc = {ids[0]: 0.90, ids[1]: 0.92, ids[2]: 0.91, others[0]: 0.95, others[1]: 0.96, single["id"]: 0.80}
    size = {i: 1000 for i in ids} | {i: 2000 for i in others} | {single["id"]: 500}
    _finish(db_url, acc, size)

    every = ",".join(map(str, [*ids, *others, single["id"]]))
    plain = client.get("/api/compare", params={"runs": every}).json()
    assert "groups" not in plain and len(plain["rows"]) == 12  # unchanged without the switch
    data = client.get("/api/compare", params={"runs": every, "baseline": ids[1], "groups": "true"}).json()
    groups = data["groups"]
    rows = {(r["group_key"], r["format"]): r for r in groups["rows"]}
    assert len(rows) == 6  # 3 groups × 2 formats
    base = rows[(body["group_key"], "tflite-float32")]
    want = mean_interval([0.90, 0.92, 0.91])
    assert base["run_ids"] == ids and base["n_runs"] == 3 and base["group_name"] == "base"
    assert base["accuracy"] == pytest.approx(0.91) and base["accuracy_n"] == 3
    assert base["accuracy_ci_low"] == pytest.approx(want.ci_low) and base["accuracy_ci_high"] == pytest.approx(
        want.ci_high
    )
    assert base["accuracy_half_width"] == pytest.approx(4.303 * 0.01 / 3**0.5, rel=1e-3)
    assert base["size_bytes"] == 1000 and base["size_bytes_half_width"] == 0.0
    assert groups["baseline"] == {"group_key": body["group_key"], "format": "tflite-float32", "run_ids": ids}
    assert base["is_baseline"] and base["differences"] == {}

    wide = rows[(other["group_key"], "tflite-float32")]
    d = wide["differences"]["accuracy"]
    expected = welch_difference([0.95, 0.96], [0.90, 0.92, 0.91])
    assert d["diff"] == pytest.approx(0.045) and d["ci_low"] == pytest.approx(expected.ci_low)
    assert d["significant"] is True and d["interval"] == "welch"
    assert wide["differences"]["size_bytes"]["interval"] == "exact"
    once = rows[(single["group_key"], "tflite-float32")]
    assert once["accuracy_ci_low"] is None and once["accuracy_n"] == 1
    assert once["differences"]["accuracy"]["interval"] == "no interval"
    assert once["delta_accuracy_significant"] is None
    # int8 against the baseline group's float32 (as the per-run deltas), latency against its int8
    int8 = rows[(other["group_key"], "tflite-int8")]
    assert int8["differences"]["accuracy"]["diff"] == pytest.approx(0.035)

    tradeoff = data["figures"]["tradeoff"]
    points = [t for t in tradeoff["data"] if (t.get("meta") or {}).get("role") == "variants"]
    assert points and all("error_y" in t and "error_x" in t for t in points)
    bars = [v for t in points for v in t["error_y"]["array"] if v is not None]
    assert pytest.approx(base["accuracy_ci_high"] - base["accuracy"]) in bars
    loss = data["figures"]["loss"]["data"]
    roles = [(t.get("meta") or {}).get("role") for t in loss]
    assert roles.count("mean") == 3 and roles.count("band") == 4  # the single run has no band
    assert roles.count("member") == 6 and all(t["visible"] is False for t in loss if t["meta"]["role"] == "member")

    exported = client.get("/api/compare.csv", params={"runs": every, "groups": "true"})
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(table) == 6 and {"accuracy_ci_low", "delta_accuracy_significant", "run_ids"} <= set(table[0])
    assert table[0]["run_ids"] == " ".join(map(str, ids))
    as_json = client.get("/api/compare.json", params={"runs": every, "groups": "true"}).json()
    assert len(as_json["groups"]["rows"]) == 6
    report = client.get("/api/compare/report.html", params={"runs": every, "groups": "true"}).text
    assert "Seed groups" in report and "no interval" in report and "significant" in report


def test_a_sweep_repeats_every_point(client: TestClient) -> None:
    sweep = {"base": tiny_spec("sw", repeats=2), "grid": {"training.optimizer.learning_rate": [0.001, 0.01]}}
    preview = client.post("/api/sweeps/preview", json=sweep).json()
    assert preview["count"] == 4
    made = client.post("/api/sweeps", json=sweep).json()
    assert made["count"] == 4
    keys = [r["group_key"] for r in made["data"]]
    assert len(set(keys)) == 2 and all(r["group_size"] == 2 for r in made["data"])
    too_many = client.post(
        "/api/sweeps",
        json={**sweep, "base": tiny_spec("sw", repeats=20), "grid": {"training.epochs": list(range(1, 27))}},
    )
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"][:3] == ["body", "base", "repeats"]
    bad = client.post("/api/runs", json=tiny_spec("x", repeats=21))
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "repeats"]


def test_a_group_with_controls_gets_its_paired_effect_net_of_extra_training(client: TestClient, db_url: str) -> None:
    """repeats × control: each seed's run has its own control; the group row's vs_control_* is
    the mean over seeds of each member minus its own control (same format), with the paired
    Student-t interval (mean_interval over the per-seed differences), not Welch's."""
    spec = tiny_spec("prune", repeats=3, control=True, techniques=[{"name": "pruning", "epochs": 1}])
    created = client.post("/api/runs", json=spec)
    assert created.status_code == 201, created.text
    ids = created.json()["group_run_ids"]
    members = [client.get(f"/api/runs/{i}").json() for i in ids]
    controls = [m["control_run_id"] for m in members]
    assert all(controls) and len(set(controls)) == 3
    # the controls share a seed with their runs, so they form a group of their own
    twins = [client.get(f"/api/runs/{c}").json() for c in controls]
    assert [t["spec"]["training"]["seed"] for t in twins] == [m["spec"]["training"]["seed"] for m in members]
    assert len({t["group_key"] for t in twins}) == 1 and twins[0]["group_key"] != members[0]["group_key"]
    acc = dict(zip(ids, (0.90, 0.93, 0.91), strict=True)) | dict(zip(controls, (0.89, 0.90, 0.90), strict=True))
    _finish(db_url, acc, {i: 1000 for i in ids} | {c: 4000 for c in controls})

    data = client.get("/api/compare", params={"runs": ",".join(map(str, ids)), "groups": "true"}).json()
    row = next(r for r in data["groups"]["rows"] if r["format"] == "tflite-int8")
    paired = mean_interval([0.01, 0.03, 0.01])  # int8 against int8, seed by seed
    assert row["control_run_ids"] == controls
    assert row["vs_control_accuracy"] == pytest.approx(paired.mean) and row["vs_control_accuracy_n"] == 3
    assert row["vs_control_accuracy_ci_low"] == pytest.approx(paired.ci_low)
    assert row["vs_control_accuracy_ci_high"] == pytest.approx(paired.ci_high)
    assert row["vs_control_gzip_ratio"] == pytest.approx(0.25)  # 250 against 1000 gzip bytes, every seed


def test_a_rerun_of_a_seed_replaces_it_instead_of_narrowing_the_interval(client: TestClient, db_url: str) -> None:
    ids = client.post("/api/runs", json=tiny_spec("again", repeats=3)).json()["group_run_ids"]
    first = client.get(f"/api/runs/{ids[0]}").json()
    rerun = client.post("/api/runs", json=first["spec"]).json()  # the same seed submitted again
    assert rerun["group_key"] == first["group_key"] and rerun["id"] not in ids
    _finish(
        db_url, {ids[0]: 0.80, ids[1]: 0.90, ids[2]: 0.85, rerun["id"]: 0.81}, dict.fromkeys([*ids, rerun["id"]], 1000)
    )
    every = ",".join(map(str, [*ids, rerun["id"]]))
    data = client.get("/api/compare", params={"runs": every, "groups": "true"}).json()
    row = next(r for r in data["groups"]["rows"] if r["format"] == "tflite-float32")
    assert row["n_runs"] == 3 and row["accuracy_n"] == 3  # seeds 0, 1, 2 once each
    assert sorted(row["run_ids"]) == sorted([rerun["id"], ids[1], ids[2]]) and row["superseded_run_ids"] == [ids[0]]
    assert row["accuracy"] == pytest.approx(mean_interval([0.81, 0.90, 0.85]).mean)
