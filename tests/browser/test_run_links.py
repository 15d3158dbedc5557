"""Issue 16 items 7 and 8 in Chromium: a retry and the run it retried link to each other (run
pages and runs list), and an external run is headlined by its final logged accuracy, named as
logged, in the runs list. Nothing here trains: the runs are external or cancelled."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Dashboard
from tests.stack import tiny_spec

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def linked(live_stack: Any) -> dict[str, Any]:
    """In an experiment of their own: a cancelled run and its (cancelled) retry; an external run
    that logged val_accuracy; an external run that logged only a loss."""
    http = live_stack.client.http
    exp = f"links-{secrets.token_hex(3)}"
    original = live_stack.client.submit(tiny_spec("to retry", experiment=exp))
    http.post(f"/api/runs/{original['id']}/cancel")
    original = live_stack.client.wait_terminal(original["id"])
    assert original["status"] == "cancelled"
    retry = http.post(f"/api/runs/{original['id']}/retry").json()
    http.post(f"/api/runs/{retry['id']}/cancel")
    live_stack.client.wait_terminal(retry["id"])

    def external(name: str, series: dict[str, list[float]]) -> dict[str, Any]:
        run = http.post("/api/runs", json={"name": name, "experiment": exp, "external": True}).json()
        points = [{"key": k, "step": i, "value": v} for k, vs in series.items() for i, v in enumerate(vs)]
        assert (
            http.post(
                f"/api/runs/{run['id']}/metrics",
                content=json.dumps({"points": points}),
                headers={"content-type": "application/json"},
            ).status_code
            == 200
        )
        http.post(f"/api/runs/{run['id']}/finish", json={"status": "succeeded"})
        return http.get(f"/api/runs/{run['id']}").json()

    logged = external("logged acc", {"accuracy": [0.5, 0.97], "val_accuracy": [0.6, 0.8125], "loss": [1.0, 0.4]})
    loss_only = external("loss only", {"loss": [1.0, 0.4]})
    return {"experiment": exp, "original": original, "retry": retry, "logged": logged, "loss_only": loss_only}


def test_a_retry_and_its_original_link_to_each_other(dashboard: Dashboard, linked: dict[str, Any]) -> None:
    original, retry = linked["original"], linked["retry"]
    page = dashboard.open(f"/runs/{original['id']}")
    context = page.locator("#run-context")
    expect(context).to_contain_text(f"retried as #{retry['id']} (cancelled)")
    page.locator(f'#run-context a[data-related="{retry["id"]}"]').click()
    page.wait_for_url(f"**/runs/{retry['id']}")
    expect(page.locator("#run-context")).to_contain_text(f"retry of run #{original['id']}")
    expect(page.locator(f'#run-context a[data-related="{original["id"]}"]')).to_have_attribute(
        "href", f"/runs/{original['id']}"
    )

    page = dashboard.open(f"/?experiment={linked['experiment']}")
    row = page.locator(f'tr[data-run-id="{retry["id"]}"]')
    expect(row.locator(f'[data-retry-of="{original["id"]}"]')).to_contain_text(f"retry of #{original['id']}")
    assert page.locator(f'tr[data-run-id="{original["id"]}"] [data-retry-of]').count() == 0
    assert dashboard.console_errors == []


def test_an_external_run_shows_its_final_logged_accuracy_in_the_list(
    dashboard: Dashboard, linked: dict[str, Any]
) -> None:
    logged, loss_only = linked["logged"], linked["loss_only"]
    assert logged["headline"]["format"] == "logged" and logged["headline"]["accuracy"] == 0.8125
    page = dashboard.open(f"/?experiment={linked['experiment']}")
    row = page.locator(f'tr[data-run-id="{logged["id"]}"]')
    model = row.locator('td[data-cell="model"]')
    expect(model).to_have_text("logged")
    assert "val_accuracy" in (model.get_attribute("title") or "")
    expect(row).to_contain_text("0.8125")  # the last val_accuracy, not the training accuracy 0.97
    assert "0.97" not in row.inner_text()
    expect(page.locator(f'tr[data-run-id="{loss_only["id"]}"] td[data-cell="model"]')).to_have_text("–")

    page = dashboard.open(f"/runs/{logged['id']}")  # the run page lists its final values
    expect(page.locator("#run-final .value")).to_contain_text("val_accuracy 0.8125")
    assert page.locator("#run-headline").count() == 0
    assert dashboard.console_errors == []


def test_log_y_ticks_read_as_the_numbers_they_mark(dashboard: Dashboard, linked: dict[str, Any]) -> None:
    """Plotly's own log ticks label 0.5 as "5" (a minor digit); every label must be its value."""
    page = dashboard.open(f"/runs/{linked['logged']['id']}?logy=1")
    page.wait_for_function("() => document.getElementById('chart-loss')?._fullLayout?.yaxis?.type === 'log'")
    labels = page.evaluate("[...document.querySelectorAll('#chart-loss .ytick text')].map(t => t.textContent)")
    assert labels, "no y tick labels drawn"
    values = [float(label) for label in labels]  # each a whole number, no minor digits
    assert 0.5 in values and 1.0 in values  # the loss runs from 1.0 to 0.4
    assert all(0.1 <= v <= 2 for v in values), labels
    assert dashboard.console_errors == []


def test_a_running_run_whose_worker_went_quiet_says_so(dashboard: Dashboard, live_stack: Any) -> None:
    """A worker heartbeats every second; the review saw a killed worker's run show "68 %, ETA 4 s"
    for two minutes. Here a run is claimed by a worker that never beats (written to the store
    directly, so no real worker receives it), its last heartbeat 35 s ago: under the stack's 60 s
    heartbeat timeout, so not yet reaped, but stale."""
    from datetime import timedelta

    from sqlalchemy import update

    from backend.store import models, runs
    from backend.store.db import make_engine, make_sessionmaker, unit_of_work
    from tests.factories import make_run

    engine = make_engine(live_stack.settings.database_url)
    factory = make_sessionmaker(engine)
    with unit_of_work(factory) as s:
        run = make_run(s, **tiny_spec("ghost"))
        lease = runs.claim_run(s, run_id=run.id, worker="ghost@nowhere")
        assert lease is not None
        old = models.utcnow() - timedelta(seconds=35)
        s.execute(update(models.Run).where(models.Run.id == run.id).values(heartbeat_at=old))
    try:
        fresh = live_stack.client.http.get(f"/api/runs/{run.id}").json()
        assert 35 <= fresh["heartbeat_age_s"] < 60
        page = dashboard.open(f"/runs/{run.id}")
        expect(page.locator("#run-stale")).to_contain_text("No heartbeat from ghost@nowhere for")
        assert dashboard.console_errors == []
    finally:
        with unit_of_work(factory) as s:
            runs.finish_run(s, run_id=run.id, lease=lease, status="failed", error="test ghost")
        engine.dispose()
    assert live_stack.client.http.get(f"/api/runs/{run.id}").json()["heartbeat_age_s"] is None


def test_compare_lists_an_external_run_by_its_logged_accuracy_and_never_as_baseline(
    dashboard: Dashboard, linked: dict[str, Any]
) -> None:
    logged, loss_only = linked["logged"], linked["loss_only"]
    page = dashboard.open(f"/compare?runs={logged['id']},{loss_only['id']}")
    row = page.locator("#compare-table tbody tr", has_text="logged acc")
    expect(row).to_contain_text("0.8125")
    expect(row).to_contain_text("no model measured")
    for run in (logged, loss_only):  # neither has a model to compare against
        option = page.locator(f'#baseline option[value="{run["id"]}"]')
        assert option.is_disabled() and "(no measured model)" in option.inner_text()
    assert dashboard.console_errors == []
