"""Issue 16 item 4 in Chromium: the compare page's latency is a log axis of like with like
with readable ticks, the table fits 1280 px and names its baseline, and an external run in the
selection leaves the accuracy axis inside [0, 1]."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Dashboard

pytestmark = pytest.mark.browser


def test_compare_latency_table_and_accuracy_axis(dashboard: Dashboard, live_stack: Any, three_runs: list[dict]):
    http = live_stack.client.http
    ext = http.post("/api/runs", json={"name": "outside", "external": True}).json()
    points = [
        {"key": k, "step": s, "value": v}
        for s in range(0, 100, 10)
        for k, v in (("loss", 2.0 / (s + 1)), ("val_accuracy", 0.5 + s / 1000))
    ]
    assert http.post(f"/api/runs/{ext['id']}/metrics", json={"points": points}).status_code == 200
    http.post(f"/api/runs/{ext['id']}/finish", json={"status": "succeeded"})
    ids = [r["id"] for r in three_runs] + [ext["id"]]
    page = dashboard.open(f"/compare?runs={','.join(map(str, ids))}")
    for fig in ("fig-tradeoff", "fig-latency"):
        page.wait_for_function(f"() => document.querySelector('#{fig} .main-svg') !== null")

    latency = page.evaluate("""() => { const gd = document.getElementById('fig-latency');
        return {type: gd._fullLayout.yaxis.type, ticks: gd._fullLayout.yaxis.ticktext,
                x: gd.data.filter(t => t.type === 'bar').flatMap(t => t.x)}; }""")
    assert latency["type"] == "log"
    assert latency["x"] and all("tflite" in x for x in latency["x"])  # TFLite with TFLite
    assert all(t.endswith(" ms") for t in latency["ticks"])  # "0.01 ms", not "5 6 7 8 9"

    y_range = page.evaluate("document.getElementById('fig-tradeoff')._fullLayout.yaxis.range")
    assert 0.0 <= y_range[0] < y_range[1] <= 1.0
    x_ticks = page.evaluate("document.getElementById('fig-tradeoff')._fullLayout.xaxis.ticktext")
    assert x_ticks and all(t.endswith(("KiB", "MiB")) for t in x_ticks)

    table = page.locator("#compare-table")
    box = table.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1280
    wrap = page.evaluate(
        "(() => { const w = document.querySelector('#compare-table').parentElement;"
        " return [w.scrollWidth, w.clientWidth]; })()"
    )
    assert wrap[0] <= wrap[1]  # nothing off to the side, the Pareto column included
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    baseline = page.locator("#compare-baseline").inner_text()
    assert f"#{three_runs[0]['id']} {three_runs[0]['name']}" in baseline
    assert dashboard.console_errors == []
