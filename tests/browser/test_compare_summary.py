"""Issue 19 item 4 in Chromium: the compare page's summary control picks which value of each
logged series the table, an external run's accuracy and the exports show (best validation
epoch by default, last, min, max), and spec values are columns that can be shown and sorted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Dashboard

pytestmark = pytest.mark.browser


def test_summary_control_spec_columns_and_sort(dashboard: Dashboard, live_stack: Any, three_runs: list[dict]):
    http = live_stack.client.http
    # an external run that overfits: lowest val_loss at step 20 (val_accuracy 0.85 there), last 0.70
    ext = http.post("/api/runs", json={"name": "overfits", "external": True}).json()
    series = {"val_loss": [0.9, 0.4, 0.6, 0.8], "val_accuracy": [0.7, 0.85, 0.8, 0.7]}
    points = [{"key": k, "step": 10 * (i + 1), "value": v} for k, vs in series.items() for i, v in enumerate(vs)]
    assert http.post(f"/api/runs/{ext['id']}/metrics", json={"points": points}).status_code == 200
    http.post(f"/api/runs/{ext['id']}/finish", json={"status": "succeeded"})
    ids = [r["id"] for r in three_runs] + [ext["id"]]
    api = {
        how: {
            r["run_id"]: r
            for r in http.get("/api/compare", params={"runs": ",".join(map(str, ids)), "summary": how}).json()["rows"]
        }
        for how in ("best", "last", "max")
    }
    assert api["best"][ext["id"]]["accuracy"] == 0.85 and api["last"][ext["id"]]["accuracy"] == 0.7
    assert api["max"][ext["id"]]["logged_val_loss"] == 0.9
    assert http.get("/api/compare", params={"runs": str(ext["id"]), "summary": "median"}).status_code == 422

    page = dashboard.open(f"/compare?runs={','.join(map(str, ids))}")
    page.wait_for_selector("#compare-table")
    row = page.locator("#compare-table tbody tr", has_text="overfits")
    assert page.locator("#summary").input_value() == "best"
    assert "85" in row.locator("td").nth(3).inner_text()  # Accuracy at the best epoch
    # the logged validation accuracy as a column of its own, from the column chooser
    page.locator("#column-chooser summary").click()
    page.locator("#column-chooser [data-col='logged_val_accuracy'] input").check()
    page.wait_for_selector("#compare-table th:has-text('Val acc (best)')")

    page.select_option("#summary", "last")
    page.wait_for_selector("#compare-table th:has-text('Val acc (last)')")
    assert "summary=last" in page.url
    assert "70" in page.locator("#compare-table tbody tr", has_text="overfits").locator("td").nth(3).inner_text()
    assert "summary=last" in (page.locator("#export-csv").get_attribute("href") or "")
    csv = http.get(page.locator("#export-csv").get_attribute("href")).text
    header = csv.splitlines()[0].split(",")
    assert {"summary", "logged_val_accuracy", "spec_target_sparsity", "spec_number_of_clusters"} <= set(header)

    # a spec column, shown from the chooser, then sorted by (descending first, nulls last)
    if not page.locator("#column-chooser").get_attribute("open"):
        page.locator("#column-chooser summary").click()
    page.locator("#column-chooser [data-col='spec_target_sparsity'] input").check()
    page.wait_for_selector("#compare-table th button[data-sort='spec_target_sparsity']")
    assert "cols=logged_val_accuracy,spec_target_sparsity" in page.url.replace("%2C", ",")
    page.locator("#compare-table th button[data-sort='spec_target_sparsity']").click()
    first = page.locator("#compare-table tbody tr").first
    assert "prune-int8" in first.inner_text() and "0.8" in first.inner_text()
    assert "sort=-spec_target_sparsity" in page.url
    assert dashboard.console_errors == []
