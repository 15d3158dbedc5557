"""Issue 16 items 1 and 2 in Chromium: the headline is the model the run ships, and every
column of the runs list sorts (all runs, through the API) when its header is clicked. The runs
are tests/browser/conftest.py's ship_runs, shared with the other browser modules."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Dashboard

pytestmark = pytest.mark.browser


def _variants(live_stack: Any, run_id: int) -> dict[str, dict[str, Any]]:
    return {v["format"]: v for v in live_stack.client.http.get(f"/api/runs/{run_id}/variants").json()["data"]}


def _kib(n: int) -> str:
    return f"{n / 1024:.{2 if n / 1024 < 10 else 1}f} KiB"


@pytest.mark.parametrize("which", ["int8-only", "prune-int8"])
def test_the_headline_is_the_int8_model_named_on_screen(
    dashboard: Dashboard, live_stack: Any, ship_runs: dict[str, Any], which: str
):
    run = ship_runs[which]
    int8 = _variants(live_stack, run["id"])["tflite-int8"]
    assert run["headline"]["format"] == "tflite-int8"
    assert run["headline"]["size_bytes"] == int8["size_bytes"]
    assert run["headline"]["gzip_bytes"] == int8["gzip_bytes"]

    page = dashboard.open(f"/runs/{run['id']}")
    value = page.locator("#run-headline .value")
    value.wait_for()
    text = value.inner_text()
    # "int8 · 169.6 KiB · 58.1 KiB gz · 0.007 ms · 0.9380": named, the int8 model's figures
    assert text.startswith("int8 · ")
    assert f"{_kib(int8['size_bytes'])} · {_kib(int8['gzip_bytes'])} gz" in text
    assert text.endswith(f"{int8['accuracy']:.4f}")
    p90 = int8["latency_p90_ms"]  # the headline latency (issue 18)
    shown = f"{float(f'{p90 * 1000:.3g}'):g} µs" if p90 < 0.1 else (f"{p90:.3f} ms" if p90 < 1 else f"{p90:.3g} ms")
    assert f"p90 {shown}" in text

    page = dashboard.open(f"/?experiment={ship_runs['experiment']}")
    row = page.locator(f'tr[data-run-id="{run["id"]}"]')
    row.wait_for()
    assert row.locator('td[data-cell="model"]').inner_text() == "int8"
    assert _kib(int8["size_bytes"]) in row.inner_text()
    assert f"{int8['accuracy']:.4f}" in row.inner_text()
    assert dashboard.console_errors == []


COLUMNS = {  # header label → the API's sort key and the value it orders by
    "Name": ("name", lambda r: r["name"]),
    "Status": ("status", lambda r: r["status"]),
    "Accuracy": ("accuracy", lambda r: (r["headline"] or {}).get("accuracy")),
    "Size": ("size_bytes", lambda r: (r["headline"] or {}).get("size_bytes")),
    "p50": ("latency_p50_ms", lambda r: (r["headline"] or {}).get("latency_p50_ms")),
    "Duration": ("duration", lambda r: r["duration_seconds"]),
    "Created": ("created_at", lambda r: r["created_at"]),
}


def _ordered(values: list[Any], descending: bool) -> bool:
    present = [v for v in values if v is not None]
    # missing values last in both directions
    if values[: len(present)] != present:
        return False
    return present == sorted(present, reverse=descending)


@pytest.mark.parametrize("label", list(COLUMNS))
def test_clicking_a_column_sorts_all_runs_by_it(
    dashboard: Dashboard, live_stack: Any, ship_runs: dict[str, Any], label: str
):
    exp = ship_runs["experiment"]
    key, value_of = COLUMNS[label]
    listed = live_stack.client.http.get("/api/runs", params={"experiment": exp}).json()["data"]
    assert len(listed) == 4
    by_id = {r["id"]: r for r in listed}

    requested: list[str] = []
    page = dashboard.open(f"/?experiment={exp}")
    page.on("request", lambda r: "/api/runs?" in r.url and requested.append(r.url))
    page.locator("#runs-table tbody tr").first.wait_for()
    header = page.locator("#runs-table thead th", has=page.locator("button.sort", has_text=re.compile(f"^{label}")))

    for click in range(2):
        before = header.get_attribute("aria-sort")
        header.locator("button").click()
        descending = before != "descending"  # a new column sorts descending first, then flips
        want = f"{'-' if descending else ''}{key}"
        expect(header).to_have_attribute("aria-sort", "descending" if descending else "ascending")
        expect(header).to_contain_text("▼" if descending else "▲")
        api_order = [
            r["id"]
            for r in live_stack.client.http.get("/api/runs", params={"experiment": exp, "sort": want}).json()["data"]
        ]
        page.wait_for_function(
            """ids => JSON.stringify([...document.querySelectorAll('#runs-table tbody tr[data-run-id]')]
                .map(r => Number(r.dataset.runId))) === JSON.stringify(ids)""",
            arg=api_order,
        )
        assert any(f"sort={want}&" in u or u.endswith(f"sort={want}") for u in requested), (click, want, requested)
        shown = [
            int(i)
            for i in page.locator("#runs-table tbody tr[data-run-id]").evaluate_all(
                "rows => rows.map(r => r.dataset.runId)"
            )
        ]
        assert _ordered([value_of(by_id[i]) for i in shown], descending), (label, want, shown)
    assert dashboard.console_errors == []
