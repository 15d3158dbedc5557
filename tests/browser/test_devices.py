"""Issue 18 item 4 with real processes: two device-labelled Celery workers on this machine
(`optiboard worker --device rpi4`, `--device jetson`) next to the live stack's training workers.
Each measures the same variants, only from its own queue; the API refuses what it cannot do
(422 naming the device, 404, 409); the compare page switches its latency between the devices
and the exports carry both; the run page lists what each device measured.

The variants are the browser tier's shared trained runs (conftest.ship_runs): no training here.
"""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Dashboard
from tests.stack import cli, stop, wait_for

pytestmark = pytest.mark.browser
HOST = socket.gethostname()
LABELS = ("jetson", "rpi4")


@pytest.fixture(scope="module")
def devices(live_stack: Any) -> Iterator[dict[str, Any]]:
    """Two device workers, started as a user starts them, online before the tests run."""
    procs = [
        cli(["worker", "--device", label], live_stack.env, log=live_stack.logs / f"device-{label}.log")
        for label in LABELS
    ]
    http = live_stack.client.http

    def online() -> dict[str, Any] | None:
        found = {d["device"]: d for d in http.get("/api/devices", params={"timeout": 1.0}).json()["data"]}
        return found if set(LABELS) <= found.keys() else None

    try:
        yield wait_for(online, timeout=90, what="both device workers online")
    finally:
        for proc in procs:
            stop(proc, timeout=60)


def _measure_all(http: Any, run_id: int) -> list[dict[str, Any]]:
    sent = []
    for label in LABELS:
        r = http.post(f"/api/runs/{run_id}/measurements", json={"device": label})
        assert r.status_code == 202, r.text
        sent += r.json()["data"]
    ids = {m["id"] for m in sent}

    def done() -> list[dict[str, Any]] | None:
        found = [m for m in http.get(f"/api/runs/{run_id}/measurements").json()["data"] if m["id"] in ids]
        return found if all(m["status"] in ("succeeded", "failed") for m in found) else None

    return wait_for(done, timeout=240, interval=0.5, what="both devices' measurements")


def test_two_devices_measure_the_same_variants_each_from_its_own_queue(
    live_stack: Any, ship_runs: dict[str, Any], devices: dict[str, Any]
) -> None:
    http = live_stack.client.http
    workers = {w["name"]: w for w in http.get("/api/workers", params={"timeout": 1.0}).json()["data"]}
    for label in LABELS:
        # a device worker consumes its own queue only, never a training queue, one job at a time
        assert workers[f"{label}@{HOST}"]["queues"] == [f"measure.{label}"]
        assert workers[f"{label}@{HOST}"]["device"] == label
        assert workers[f"{label}@{HOST}"]["concurrency"] == 1
        assert devices[label]["workers"] == [f"{label}@{HOST}"]
    assert all(w["device"] is None for name, w in workers.items() if not name.startswith(LABELS))

    run = ship_runs["prune-int8"]  # float32 and int8 TFLite variants (and a Keras one, not measured)
    measured = _measure_all(http, run["id"])
    assert [m["status"] for m in measured] == ["succeeded"] * 4, [m["error"] for m in measured]
    assert sorted((m["device"], m["format"]) for m in measured) == [
        (d, f) for d in LABELS for f in ("tflite-float32", "tflite-int8")
    ]
    for m in measured:
        # taken by the worker of its label and no other; stored with what measured it
        assert m["worker"] == f"{m['device']}@{HOST}"
        assert m["fingerprint"]["device"] == m["device"]
        assert m["fingerprint"]["cpu_count"] and m["fingerprint"]["ai_edge_litert"]
        f = m["figures"]
        assert 0 < f["latency_min_ms"] <= f["latency_p50_ms"] <= f["latency_p90_ms"] <= f["latency_p99_ms"]
        assert f["latency_count"] >= run["spec"]["measurement"]["latency_runs"]


def test_measurement_requests_are_refused_with_the_reason(
    live_stack: Any, ship_runs: dict[str, Any], devices: dict[str, Any]
) -> None:
    http = live_stack.client.http
    run_id = ship_runs["int8-only"]["id"]
    r = http.post(f"/api/runs/{run_id}/measurements", json={"device": "pixel7"})
    assert r.status_code == 422
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["body", "device"]
    assert "'pixel7'" in problem["msg"] and "jetson, rpi4" in problem["msg"]
    bad = http.post(f"/api/runs/{run_id}/measurements", json={"device": "rpi4; rm -rf"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "device"]
    assert http.post("/api/runs/999999/measurements", json={"device": "rpi4"}).status_code == 404
    # an unfinished run (an external run still logging) has nothing measured to send
    running = http.post("/api/runs", json={"name": "still-logging", "experiment": "devices", "external": True}).json()
    conflict = http.post(f"/api/runs/{running['id']}/measurements", json={"device": "rpi4"})
    assert conflict.status_code == 409 and "running" in conflict.json()["detail"]
    assert http.get(f"/api/runs/{run_id}/measurements").json()["count"] == 0  # nothing was stored


def test_compare_page_switches_latency_between_devices(
    dashboard: Dashboard, live_stack: Any, ship_runs: dict[str, Any], devices: dict[str, Any]
) -> None:
    http = live_stack.client.http
    run = ship_runs["prune-int8"]
    latest = {}
    for m in http.get(f"/api/runs/{run['id']}/measurements").json()["data"]:
        if m["status"] == "succeeded":
            latest[(m["device"], m["format"])] = m["figures"]
    if len(latest) < 4:  # this test also runs alone
        for m in _measure_all(http, run["id"]):
            latest[(m["device"], m["format"])] = m["figures"]

    ids = f"{run['id']},{ship_runs['int8-only']['id']}"
    page = dashboard.open(f"/compare?runs={ids}")
    page.wait_for_function("() => document.querySelector('#fig-latency .main-svg') !== null")
    buttons = page.locator("#device-switch button")
    assert buttons.all_inner_texts() == ["this worker", "jetson", "rpi4"]
    assert buttons.nth(0).get_attribute("aria-pressed") == "true"

    page.locator("#device-switch button[data-device=rpi4]").click()
    page.wait_for_url("**device=rpi4**")
    page.wait_for_function(
        "() => (document.getElementById('fig-latency')._fullLayout.title.text || '').includes('on rpi4')"
    )
    bars = page.evaluate("""() => document.getElementById('fig-latency').data
        .filter(t => t.type === 'bar').flatMap(t => t.x.map((x, i) => [x, t.y[i]]))""")
    # the prune-int8 run's two TFLite variants at rpi4's p50; int8-only was not measured there
    assert len(bars) == 2
    assert sorted(y for _, y in bars) == pytest.approx(
        sorted(latest[("rpi4", f)]["latency_p50_ms"] for f in ("tflite-float32", "tflite-int8"))
    )
    assert "Latencies as measured on rpi4" in page.locator("#compare-baseline").inner_text()

    page.locator("[data-x=latency_p90_ms]").click()
    page.wait_for_url("**x=latency_p90_ms**")
    page.wait_for_function(
        "() => (document.getElementById('fig-tradeoff')._fullLayout.title.text || '').includes('p90 on rpi4')"
    )
    xs = page.evaluate("""() => document.getElementById('fig-tradeoff').data
        .filter(t => t.meta && t.meta.role === 'variants').flatMap(t => t.x)""")
    assert sorted(xs) == pytest.approx(
        sorted(latest[("rpi4", f)]["latency_p90_ms"] for f in ("tflite-float32", "tflite-int8"))
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280

    # the exports carry every device's figures, whichever the page shows
    text = http.get("/api/compare.csv", params={"runs": ids, "device": "jetson"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    int8 = next(r for r in rows if r["run_id"] == str(run["id"]) and r["format"] == "tflite-int8")
    assert int8["device"] == "jetson"
    assert float(int8["latency_p50_ms"]) == pytest.approx(latest[("jetson", "tflite-int8")]["latency_p50_ms"])
    assert float(int8["latency_p90_ms@rpi4"]) == pytest.approx(latest[("rpi4", "tflite-int8")]["latency_p90_ms"])
    report = http.get("/api/compare/report.html", params={"runs": ids}).text
    assert "Measured on devices" in report and f"jetson@{HOST}" in report and f"rpi4@{HOST}" in report
    unknown = http.get("/api/compare", params={"runs": ids, "device": "pixel7"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["query", "device"]

    run_page = dashboard.open(f"/runs/{run['id']}")
    run_page.wait_for_selector("#device-measurements")
    cells = run_page.locator("#device-measurements tbody tr td:first-child").all_inner_texts()
    assert set(cells) == set(LABELS)
    run_page.wait_for_selector("#device-select option", state="attached")  # after a ~1 s ping
    assert run_page.locator("#device-select option").all_inner_texts()[0].startswith("jetson — ")
    assert dashboard.console_errors == []
