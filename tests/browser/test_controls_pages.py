"""Same-budget controls in Chromium (issue 19 item 2): the run page and its control's page link
each other and their comparison, and the compare page shows the technique's effect net of the
extra training ("vs control"), with the figures the API computes."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Dashboard
from tests.stack import tiny_spec

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/optiboard-shots")


@pytest.fixture(scope="module")
def pair(live_stack: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A digits pruning run (2 fine-tuning epochs) submitted with control=true, and its control,
    both trained by the real worker."""
    spec = tiny_spec(
        "pruned with control",
        experiment=f"controls-{secrets.token_hex(3)}",
        techniques=[{"name": "pruning", "target_sparsity": 0.7, "epochs": 2}],
        exports=["float32", "int8"],
        control=True,
    )
    run = live_stack.client.submit(spec)
    twin_id = run["control_run_id"]
    run = live_stack.client.wait_terminal(run["id"], timeout=600)
    twin = live_stack.client.wait_terminal(twin_id, timeout=600)
    assert run["status"] == twin["status"] == "succeeded", (run["error"], twin["error"])
    return run, twin


def test_the_run_and_its_control_link_each_other(
    dashboard: Dashboard, live_stack: Any, pair: tuple[dict, dict]
) -> None:
    run, twin = pair

    def dashboard_variants(run_id: int) -> list[dict[str, Any]]:
        return live_stack.client.http.get(f"/api/runs/{run_id}/variants").json()["data"]

    page = dashboard.open(f"/runs/{run['id']}")
    context = page.locator("#run-context")
    expect(context).to_contain_text(f"same-budget control #{twin['id']}")
    # the Variants card states the net effect per format, as the comparison computes it (one
    # seed: the difference without an interval, and how to get one)
    effect = page.locator("#run-net-effect")
    expect(effect).to_contain_text("Effect net of extra training")
    expect(effect).to_contain_text("n=1: no interval")
    expect(effect.locator(".net-effect-row")).to_have_count(len(dashboard_variants(run["id"])))  # one per format
    expect(effect).to_contain_text("gzip")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "run-with-control.png"), full_page=True)
    page.locator(f'#run-context a[data-related="{twin["id"]}"]').click()
    page.wait_for_url(f"**/runs/{twin['id']}")
    expect(page.locator("#run-context")).to_contain_text(f"same-budget control of run #{run['id']}")
    assert dashboard.csp_violations(page) == [] and dashboard.console_errors == []


def test_the_compare_page_shows_the_effect_net_of_extra_training(
    dashboard: Dashboard, live_stack: Any, pair: tuple[dict, dict]
) -> None:
    run, twin = pair
    page = dashboard.open(f"/runs/{run['id']}")
    page.locator("#compare-control").click()
    page.wait_for_url(re.compile(rf"/compare\?runs={run['id']},{twin['id']}$"))
    table = page.locator("#compare-table")
    expect(table.locator("th", has_text="vs control")).to_have_count(1)
    rows = live_stack.client.http.get("/api/compare", params={"runs": f"{run['id']},{twin['id']}"}).json()["rows"]
    mine = [r for r in rows if r["run_id"] == run["id"]]
    assert mine and all(r["control_run_id"] == twin["id"] and r["vs_control_accuracy"] is not None for r in mine)
    int8 = next(r for r in mine if r["format"] == "tflite-int8")
    assert int8["control_format"] == "tflite-int8" and int8["vs_control_gzip_ratio"] < 0.8  # 70 % zeros compress
    cells = table.locator(f'[data-control="{twin["id"]}"]')
    expect(cells).to_have_count(len(mine))
    points = 100 * int8["vs_control_accuracy"]
    shown = f"{'+' if points >= 0 else '−'}{abs(points):.2f} pt\ngz {int8['vs_control_gzip_ratio']:.2f}×"
    assert shown in [c.inner_text() for c in cells.all()]
    # the control's own rows have no control of their own
    twin_rows = table.locator(f"tr:has(a[href='/runs/{twin['id']}'])")
    assert twin_rows.count() >= 1 and twin_rows.locator("[data-control]").count() == 0
    page.screenshot(path=str(SHOTS / "compare-vs-control.png"), full_page=True)
    assert dashboard.csp_violations(page) == [] and dashboard.console_errors == []
