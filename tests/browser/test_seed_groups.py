"""Seed groups in Chromium: the compare page with "Seed groups" on shows each group as one row
of "mean ± half-width" with its interval and n, the differences against the baseline group
marked significant or not, error bars on both axes of the Pareto chart, and the loss chart's
"All traces" toggle showing the member runs' curves."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.browser.conftest import Dashboard
from tests.stack import tiny_spec

pytestmark = pytest.mark.browser


def test_compare_shows_groups_with_intervals_error_bars_and_traces(
    dashboard: Dashboard, live_stack: Any, second_worker: Any
) -> None:
    client = live_stack.client
    exp = f"groups-{secrets.token_hex(3)}"
    training = {"epochs": 1, "batch_size": 64, "log_every_n_batches": 5}
    base = client.submit(tiny_spec("narrow", experiment=exp, repeats=3, training=training))
    wide = client.submit(
        tiny_spec("wide", experiment=exp, repeats=2, training=training, model={"width_multiplier": 1.5})
    )
    ids = base["group_run_ids"] + wide["group_run_ids"]
    for i in ids:
        assert client.wait_terminal(i, timeout=600)["status"] == "succeeded"

    page = dashboard.open(f"/compare?runs={','.join(map(str, ids))}&baseline={ids[0]}")
    page.wait_for_selector("#compare-table")
    assert page.locator("#group-table").count() == 0  # off by default: the per-variant table as before
    page.locator("#group-seeds").check()
    page.wait_for_selector("#group-table")
    assert "groups=1" in page.url
    rows = page.locator("#group-table tbody tr")
    assert rows.count() == 4  # two groups × (keras, float32)
    narrow = page.locator("#group-table tbody tr", has_text="narrow").first
    text = narrow.inner_text()
    assert "±" in text and "n=3" in text and "3 runs" in text
    title = narrow.locator(".ci").first.get_attribute("title") or ""
    assert "95 % confidence interval" in title and "n=3" in title
    diff = page.locator("#group-differences tbody tr", has_text="wide")
    assert diff.count() == 2
    diff = diff.first
    assert "significant" in diff.inner_text()  # either mark, never a bare number
    assert "[" in diff.locator("td").nth(1).inner_text()  # the interval of Δ accuracy

    # the Pareto chart: each group mean with error bars on both axes
    bars = page.evaluate(
        """() => document.getElementById('fig-tradeoff').data
              .filter(t => t.meta && t.meta.role === 'variants')
              .map(t => [t.error_x && t.error_x.visible !== false && t.error_x.array.length,
                         t.error_y && t.error_y.array.filter(v => v > 0).length])"""
    )
    assert bars and all(x and y for x, y in bars)
    assert page.locator("#fig-tradeoff g.errorbar").count() >= 2  # drawn, not only declared

    # curves: the group means with bands; the member runs appear with "All traces"
    def visible_members() -> int:
        return page.evaluate(
            "() => document.getElementById('fig-loss').data.filter(t => t.meta && t.meta.role === 'member' && t.visible === true).length"
        )

    assert visible_members() == 0
    assert page.evaluate(
        "() => document.getElementById('fig-loss').data.some(t => t.meta && t.meta.role === 'band' && t.fill === 'tonexty')"
    )
    page.locator("#all-traces").check()
    page.wait_for_function(
        "() => document.getElementById('fig-loss').data.filter(t => t.meta && t.meta.role === 'member' && t.visible === true).length > 0"
    )
    assert visible_members() == 10  # 5 runs × loss and val_loss
    page.locator("#all-traces").uncheck()
    assert visible_members() == 0
    assert "groups=true" in (page.locator("#export-csv").get_attribute("href") or "")
    page.screenshot(path=str(live_stack.logs / "compare-groups.png"), full_page=True)
    assert dashboard.console_errors == []
    assert dashboard.csp_violations(page) == []
