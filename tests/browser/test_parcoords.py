"""The runs list's parallel-coordinates view in Chromium (issue 19 item 4): brushing an axis
with the mouse selects runs, and "Compare selected (n)" links exactly those run ids; under the
strict CSP (Plotly's strict bundle), without console errors. The runs are stored through the
store (external runs with one measured variant each): nothing trains."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from backend.store import runs as run_store
from backend.store.db import make_engine, make_sessionmaker
from tests.browser.conftest import Dashboard
from tests.factories import make_run, make_variant

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/optiboard-shots")
GRID = [(lr, s) for lr in (1e-4, 1e-3, 1e-2) for s in (0.5, 0.8)]


@pytest.fixture(scope="module")
def grid(live_stack: Any) -> dict[str, Any]:
    """Six finished runs of a learning-rate × sparsity grid, in an experiment of their own."""
    exp = f"pc-{secrets.token_hex(3)}"
    engine = make_engine(live_stack.settings.db_url)
    ids = []
    with make_sessionmaker(engine)() as s:
        for i, (lr, sparsity) in enumerate(GRID):
            run = make_run(
                s,
                name=f"lr{lr:g}-s{sparsity}",
                experiment=exp,
                external=True,
                training={"optimizer": {"name": "adam", "learning_rate": lr}},
                techniques=[{"name": "pruning", "target_sparsity": sparsity}],
            )
            make_variant(
                s, run.id, "tflite-int8", accuracy=0.9 - 0.02 * i, size_bytes=10_000, latency_p90_ms=0.01 + 0.001 * i
            )
            run_store.finish_run(s, run_id=run.id, lease=None, status="succeeded")
            ids.append(run.id)
        s.commit()
    engine.dispose()
    return {"experiment": exp, "ids": ids}


def _selected(page: Any) -> list[int]:
    link = page.locator("#parcoords-compare")
    href = link.get_attribute("href") or ""
    return [int(i) for i in href.split("runs=", 1)[1].split(",")] if "runs=" in href else []


def test_brushing_an_axis_selects_runs_for_the_compare_page(
    dashboard: Dashboard, live_stack: Any, grid: dict[str, Any]
) -> None:
    page = dashboard.open(f"/?experiment={grid['experiment']}")
    page.locator("#parcoords-toggle").click()
    chart = page.locator("#parcoords-chart")
    expect(page.locator("#parcoords-card .card-title")).to_contain_text("Parallel coordinates (6 runs)")
    # the 5 MB strict bundle is loaded when the view opens
    expect(page.locator("#parcoords-compare")).to_have_text("Compare selected (6)", timeout=30_000)
    assert dashboard.console_errors == []
    assert sorted(_selected(page)) == sorted(grid["ids"])
    labels = chart.locator(".axis-title").evaluate_all("els => els.map((e) => e.textContent)")
    assert labels[:2] == ["learning rate", "sparsity"] and "accuracy" in labels
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "runs-parcoords.png"))

    # brush the learning-rate axis with the mouse over its upper part (1e-2, and 1e-3 maybe)
    axis = chart.locator(".axis-brush .background").first
    box = axis.bounding_box()
    assert box is not None
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(x, box["y"] + box["height"] * 0.3, steps=8)
    page.mouse.up()
    expect(page.locator("#parcoords-compare")).not_to_have_text("Compare selected (6)")
    brushed = page.evaluate("document.getElementById('parcoords-chart').data[0].dimensions[0].constraintrange")
    lo, hi = (brushed[0] if isinstance(brushed[0], list) else brushed)[:2]
    table = live_stack.client.http.get("/api/parcoords", params={"experiment": grid["experiment"]}).json()
    expected = [r["run_id"] for r in table["rows"] if lo <= r["values"][0] <= hi]
    assert 0 < len(expected) < 6
    assert sorted(_selected(page)) == sorted(expected)
    expect(page.locator("#parcoords-compare")).to_have_text(f"Compare selected ({len(expected)})")
    assert {r["name"] for r in table["rows"] if r["run_id"] in expected} <= {
        n for n in (f"lr{lr:g}-s{s}" for lr, s in GRID) if "lr0.01" in n or "lr0.001" in n
    }
    page.screenshot(path=str(SHOTS / "runs-parcoords-brushed.png"))
    page.locator("#parcoords-compare").click()
    page.wait_for_url("**/compare?runs=*")
    assert sorted(int(i) for i in page.url.split("runs=", 1)[1].split("&")[0].split(",")) == sorted(expected)
    assert dashboard.csp_violations(page) == [] and dashboard.console_errors == []
