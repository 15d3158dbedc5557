"""GET /api/parcoords (issue 19 item 4): the runs the list shows as parallel coordinates, one
axis per spec value that varies, then the headline's accuracy, gzip size and latency."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend.core.settings import Settings
from backend.store.db import make_engine, make_sessionmaker
from tests.factories import make_run, make_variant


def seed(settings: Settings) -> dict[str, int]:
    """Six runs of experiment "grid" (learning rate × pruning or not), one queued run without a
    model, and one run of another experiment; returns name → id."""
    engine = make_engine(settings.db_url)
    ids: dict[str, int] = {}
    with make_sessionmaker(engine)() as s:
        for i, (lr, sparsity) in enumerate(
            [(1e-4, None), (1e-3, None), (1e-2, None), (1e-4, 0.5), (1e-3, 0.8), (1e-2, 0.8)]
        ):
            techniques = [{"name": "pruning", "target_sparsity": sparsity}] if sparsity else []
            run = make_run(
                s,
                name=f"g{i}",
                experiment="grid",
                training={"optimizer": {"name": "adam", "learning_rate": lr}, "epochs": 3},
                techniques=techniques,
            )
            make_variant(
                s, run.id, "tflite-int8", accuracy=0.8 + i / 100, size_bytes=1000 + i, latency_p90_ms=0.01 * (i + 1)
            )
            ids[run.name] = run.id
        ids["pending"] = make_run(s, name="pending", experiment="grid").id
        ids["elsewhere"] = make_run(s, name="elsewhere", experiment="other", training={"epochs": 9}).id
        s.commit()
    engine.dispose()
    return ids


def test_columns_are_the_varying_spec_values_then_the_headline(client: TestClient, app_settings: Settings) -> None:
    ids = seed(app_settings)
    r = client.get("/api/parcoords", params={"experiment": "grid"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 7 and body["left_out"] == 1  # the queued run has no model yet
    keys = [c["key"] for c in body["columns"]]
    # epochs, optimizer, architecture… are the same for every run: no axis
    assert keys == ["learning_rate", "chain", "spec_target_sparsity", "accuracy", "gzip_bytes", "latency_p90_ms"]
    cols = {c["key"]: c for c in body["columns"]}
    assert cols["learning_rate"]["kind"] == "ordinal" and cols["learning_rate"]["ticks"] == ["0.0001", "0.001", "0.01"]
    assert cols["spec_target_sparsity"]["ticks"] == ["none", "0.5", "0.8"]  # runs without pruning: "none"
    assert cols["chain"]["ticks"] == ["none", "pruning"]
    assert cols["accuracy"]["kind"] == "numeric" and cols["accuracy"]["group"] == "metric"
    rows = {row["run_id"]: dict(zip(keys, row["values"], strict=True)) for row in body["rows"]}
    assert set(rows) == {ids[f"g{i}"] for i in range(6)}
    g4 = rows[ids["g4"]]
    assert (g4["learning_rate"], g4["chain"], g4["spec_target_sparsity"]) == (1, 1, 2)
    assert (g4["accuracy"], g4["gzip_bytes"], g4["latency_p90_ms"]) == pytest.approx((0.84, 1004, 0.05))


def test_filters_are_the_run_lists_and_bad_ones_are_named(client: TestClient, app_settings: Settings) -> None:
    seed(app_settings)
    only = client.get("/api/parcoords", params={"experiment": "grid", "q": "g1"}).json()
    assert [r["name"] for r in only["rows"]] == ["g1"] and [c["group"] for c in only["columns"]] == ["metric"] * 3
    assert client.get("/api/parcoords", params={"experiment": "none"}).json() == {
        "columns": [],
        "rows": [],
        "left_out": 0,
        "count": 0,
        "limit": 500,
    }
    bad = client.get("/api/parcoords", params={"limit": 5000})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "limit"]
    assert client.get("/api/parcoords", params={"status": "done"}).json()["detail"][0]["loc"] == ["query", "status"]
