"""Issue 15 item 3 (API and store): a run holds at most OPTIBOARD_MAX_METRIC_KEYS_PER_RUN keys
(422 beyond, naming the limit, nothing written); its key list is read without reading any
series; GET …/metrics returns at most MAX_KEYS_PER_READ keys. A run at the limit, and a run
stored before the limit with 20,000 keys, answer in well under a second. Real HTTP, real server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from backend.api.routes.metrics import MAX_KEYS_PER_READ
from backend.store import metrics, runs
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from backend.store.metrics import keyset as metric_keyset
from runspec.spec import RunSpec
from tests.reliability import figures
from tests.security.live import LiveApi, live_api

LIMIT = 1000  # the default
STEPS = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    yield from live_api(tmp_path_factory.mktemp("keys"))


def _points(keys: list[str], steps: int = 1) -> dict[str, object]:
    return {"points": [{"key": k, "step": s, "value": float(s)} for k in keys for s in range(steps)]}


def test_a_run_takes_at_most_the_limit_of_keys_and_reads_stay_bounded(server: LiveApi) -> None:
    with server.http() as http:
        rid = http.post("/api/runs", json={"name": "many-keys", "external": True}).json()["id"]
        # One batch with more distinct keys than the limit: 422 naming it, nothing stored.
        r = http.post(f"/api/runs/{rid}/metrics", json=_points([f"k{i:05d}" for i in range(LIMIT + 1)]))
        assert r.status_code == 422, r.text
        err = r.json()["detail"][0]
        assert err["loc"] == ["body", "points"] and err["ctx"]["limit"] == LIMIT
        assert "1,000" in err["msg"] and "OPTIBOARD_MAX_METRIC_KEYS_PER_RUN" in err["msg"]
        assert http.get(f"/api/runs/{rid}/metrics/keys").json()["keys"] == []
        # Filled to the limit in two batches (the training loop's keys among them).
        keys = ["loss", "val_loss", "accuracy"] + [f"k{i:05d}" for i in range(LIMIT - 3)]
        for half in (keys[: LIMIT // 2], keys[LIMIT // 2 :]):
            r = http.post(f"/api/runs/{rid}/metrics", json=_points(half, STEPS))
            assert r.status_code == 200, r.text
        # At the limit: a new key is refused, known keys still log.
        r = http.post(
            f"/api/runs/{rid}/metrics",
            json={
                "points": [{"key": "loss", "step": 99, "value": 1.0}, {"key": "one-too-many", "step": 0, "value": 1.0}]
            },
        )
        assert r.status_code == 422 and r.json()["detail"][0]["ctx"] == {"limit": LIMIT, "stored": LIMIT, "new": 1}
        assert (
            http.post(f"/api/runs/{rid}/metrics", json={"points": [{"key": "loss", "step": 99, "value": 1.0}]}).json()[
                "accepted"
            ]
            == 1
        )
        figures.add("metric batches refused past the key limit (422)", 2)

        # The key list, paged, without reading a series.
        start = time.perf_counter()
        listed = http.get(f"/api/runs/{rid}/metrics/keys").json()
        keys_s = time.perf_counter() - start
        assert listed["keys"] == sorted(keys) and listed["count"] == LIMIT and listed["next_after"] is None
        assert listed["max_keys_per_run"] == LIMIT and listed["max_keys_per_read"] == MAX_KEYS_PER_READ
        assert listed["default_keys"][:3] == ["loss", "val_loss", "accuracy"]
        paged, after = [], ""
        while True:
            page = http.get(f"/api/runs/{rid}/metrics/keys", params={"after": after, "limit": 300}).json()
            paged += page["keys"]
            if page["next_after"] is None:
                break
            after = page["next_after"]
        assert paged == sorted(keys)

        # GET …/metrics without keys: the default set only, and it says there is more.
        start = time.perf_counter()
        r = http.get(f"/api/runs/{rid}/metrics")
        read_s = time.perf_counter() - start
        body = r.json()
        # the training loop's keys first, then the others in order (the series come sorted)
        assert set(body["series"]) == {"loss", "val_loss", "accuracy", *keys[3:MAX_KEYS_PER_READ]}
        assert len(body["series"]) == MAX_KEYS_PER_READ and body["more_keys"] is True
        assert body["series"]["loss"]["steps"] == [0, 1, 2, 3, 4, 99]
        chosen = keys[-3:]
        r = http.get(f"/api/runs/{rid}/metrics", params={"keys": ",".join(chosen)}).json()
        assert sorted(r["series"]) == sorted(chosen) and r["more_keys"] is False
        too_many = http.get(f"/api/runs/{rid}/metrics", params={"keys": ",".join(keys[: MAX_KEYS_PER_READ + 1])})
        assert too_many.status_code == 422 and too_many.json()["detail"][0]["ctx"]["limit"] == MAX_KEYS_PER_READ
    assert keys_s < 1.0 and read_s < 1.0, (keys_s, read_s)
    figures.add(f"run at the key limit: key list {keys_s * 1000:.0f} ms, default read {read_s * 1000:.0f} ms")


def test_a_run_stored_before_the_limit_with_20000_keys_reads_fast(server: LiveApi) -> None:
    factory = make_sessionmaker(make_engine(server.db))
    with unit_of_work(factory) as s:
        run = runs.create_run(s, spec=RunSpec(name="legacy-keys", external=True))
        metrics.log_batch(s, run_id=run.id, points=[(f"k{i:05d}", 0, 1.0, None) for i in range(20_000)])
    with server.http() as http:
        for path in ("/metrics", "/metrics?after_step=-1", "/metrics/keys?limit=1000"):
            start = time.perf_counter()
            r = http.get(f"/api/runs/{run.id}{path}")
            took = time.perf_counter() - start
            assert r.status_code == 200 and took < 1.0, (path, took)
        assert len(r.json()["keys"]) == 1000 and r.json()["next_after"] == "k00999"


def test_the_key_limit_in_the_store_on_both_backends(session: Session) -> None:
    run = runs.create_run(session, spec=RunSpec(name="store-keys", external=True))
    metrics.log_batch(session, run_id=run.id, points=[(f"k{i}", 0, 1.0, None) for i in range(10)], max_keys=10)
    with pytest.raises(metric_keyset.TooManyMetricKeys):
        metrics.log_batch(session, run_id=run.id, points=[("new", 0, 1.0, None)], max_keys=10)
    assert metrics.log_batch(session, run_id=run.id, points=[("k3", 1, 1.0, None)], max_keys=10) == 1
    assert metrics.metric_keys(session, run_id=run.id) == sorted(f"k{i}" for i in range(10))
    assert metric_keyset.count_keys(session.connection(), run_id=run.id, stop_at=4) == 4
    chosen, more = metric_keyset.default_keys(session.connection(), run_id=run.id, limit=3)
    assert chosen == ["k0", "k1", "k2"] and more
