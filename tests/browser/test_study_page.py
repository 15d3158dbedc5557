"""Issue 20's study page in Chromium: the Pareto front tells feasible from infeasible trials and
marks the baseline, the hypervolume is charted against trials and worker-minutes, the trials
table links to their runs (whose pages link back to the study), the best card and the CSV
export hold feasible trials unless asked, and pause / resume / extend / stop move the study.

The study, its baseline and its five told trials are written through the store in one
transaction (nothing trains), so the API's study loop only ever sees the study finished."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Dashboard

pytestmark = pytest.mark.browser

# (accuracy, gzip bytes, worker seconds) of each complete trial; the baseline: 0.95, 20 000 B;
# the bar: 0.94. Trial 3 is pruned (no values).
TRIALS = {0: (0.945, 4_000, 60.0), 1: (0.90, 1_000, 30.0), 2: (0.96, 8_000, 90.0), 4: (0.942, 9_000, 45.0)}
PRUNED = 3


@pytest.fixture(scope="module")
def study(live_stack: Any) -> Iterator[dict[str, Any]]:
    from datetime import timedelta

    from sqlalchemy import update

    from backend.dispatch import studies as loop
    from backend.store import models, runs, studies
    from backend.store.db import make_engine, make_sessionmaker, unit_of_work
    from runspec.studies import StudySpec
    from tests.factories import make_run, make_variant

    engine = make_engine(live_stack.settings.database_url)
    name = f"page-{secrets.token_hex(3)}"
    try:
        with unit_of_work(make_sessionmaker(engine)) as s:
            base = make_run(s, name="study baseline", experiment=name, dataset={"name": "digits"})
            lease = runs.claim_run(s, run_id=base.id, worker="w")
            make_variant(s, base.id, "keras", accuracy=0.95, size_bytes=40_000)
            make_variant(s, base.id, "tflite-float32", accuracy=0.95, size_bytes=20_000)
            runs.finish_run(s, run_id=base.id, lease=lease, status="succeeded")
            spec = StudySpec(
                name=name,
                baseline_run_id=base.id,
                budget={"max_trials": 5},  # type: ignore[arg-type]
                search_space={"chains": ["pruning"]},  # type: ignore[arg-type]
                strategy="random",
            )
            sid = loop.create_study(s, spec).id
            studies.set_status(s, study_id=sid, status="running", only_from=["queued"])
            run_ids = {}
            for number in range(5):
                run = make_run(s, name=f"{name} #{number}", experiment=name, dataset={"name": "digits"})
                run_ids[number] = run.id
                params = {
                    "chain": "pruning",
                    "export": "int8",
                    "pruning.target_sparsity": 0.6 + 0.05 * number,
                    "pruning.epochs": 2,
                    "pruning.learning_rate": 1e-3,
                }
                studies.add_trial(s, study_id=sid, number=number, params=params, run_id=run.id)
                lease = runs.claim_run(s, run_id=run.id, worker="w")
                if number == PRUNED:
                    runs.finish_run(s, run_id=run.id, lease=lease, status="cancelled")
                    studies.tell_trial(
                        s, study_id=sid, number=number, state="pruned", pruned_reason="cannot reach the bar"
                    )
                    continue
                accuracy, gzip, seconds = TRIALS[number]
                make_variant(s, run.id, "tflite-int8", accuracy=accuracy, size_bytes=gzip)
                runs.finish_run(s, run_id=run.id, lease=lease, status="succeeded")
                # worker-minutes are read from the run's start and end
                end = models.utcnow()
                s.execute(
                    update(models.Run)
                    .where(models.Run.id == run.id)
                    .values(started_at=end - timedelta(seconds=seconds), finished_at=end)
                )
                studies.tell_trial(
                    s,
                    study_id=sid,
                    number=number,
                    state="complete",
                    values=[float(gzip), accuracy],
                    constraint_value=0.94 - accuracy,
                    worker_seconds=seconds,
                )
            studies.set_status(
                s, study_id=sid, status="finished", only_from=["running"], stop_reason="trial budget spent"
            )
        yield {"id": sid, "baseline": base.id, "runs": run_ids}
    finally:
        engine.dispose()


def _traces(page: Page, element_id: str) -> list[dict[str, Any]]:
    page.wait_for_function(f"document.getElementById('{element_id}')?.data?.length > 0")
    return page.evaluate(
        """id => document.getElementById(id).data.map(t => ({
            name: t.name, x: Array.from(t.x), y: Array.from(t.y), symbol: t.marker && t.marker.symbol
        }))""",
        element_id,
    )


def test_the_front_hypervolume_trials_and_export_of_a_study(dashboard: Dashboard, study: dict[str, Any]) -> None:
    page = dashboard.open(f"/studies/{study['id']}")
    expect(page.locator("#study-status")).to_contain_text("finished trial budget spent")

    front = {t["name"]: t for t in _traces(page, "study-front")}
    assert front["infeasible (below the bar)"]["x"] == [1_000] and front["infeasible (below the bar)"]["symbol"] == "x"
    assert front["Pareto front"]["x"] == [4_000, 8_000]  # feasible, non-dominated, by cost
    assert front["feasible"]["x"] == [9_000]  # feasible but dominated by trial 0
    assert front["baseline"]["x"] == [20_000] and front["baseline"]["y"] == [0.95]
    assert front["baseline"]["symbol"] == "star"
    assert all(front[n]["symbol"] != front["infeasible (below the bar)"]["symbol"] for n in ("feasible", "baseline"))
    # the log cost axis labels every tick with its full size (not Plotly's bare "2" for 20k)
    ticks = page.evaluate(
        "() => { const a = document.getElementById('study-front').layout.xaxis; return [a.tickvals, a.ticktext]; }"
    )
    assert 10_000 in ticks[0] and "9.77 KiB" in ticks[1] and all(t.endswith("B") for t in ticks[1])
    Path("/tmp/optiboard-shots").mkdir(exist_ok=True)
    page.screenshot(path="/tmp/optiboard-shots/study-page.png", full_page=True)

    hv = _traces(page, "study-hv-trials")[0]
    assert hv["x"] == [1, 2, 3, 4, 5]  # every told trial, the pruned one too
    assert hv["y"][0] > 0 and hv["y"] == sorted(hv["y"]) and hv["y"][1] == hv["y"][0]  # trial 1 infeasible
    # In decades of compression × accuracy above the bar (0.94), against the baseline's 20 000 B:
    # trial 0 (4 000 B, 0.945) at (log10 5, 0.005), trial 2 (8 000 B, 0.96) at (log10 2.5, 0.02),
    # trial 4 dominated: 0.39794 · 0.02 + (0.69897 − 0.39794) · 0.005 = 0.0094640.
    assert hv["y"][-1] == pytest.approx(0.0094640, rel=1e-4)
    expect(page.locator("#study-hv-trials .ytitle")).to_have_text("hypervolume (decades × accuracy above bar)")
    minutes = _traces(page, "study-hv-minutes")[0]
    assert minutes["x"][-1] == pytest.approx(sum(s for _, _, s in TRIALS.values()) / 60, rel=0.01)

    best = page.locator("section.card", has_text="Best feasible")
    expect(best).to_contain_text("smallest gzip_bytes")
    expect(best.locator("tbody tr").first).to_contain_text("#0")
    rows = page.locator("section.card", has_text="Trials (5)").locator("tbody tr")
    expect(rows).to_have_count(5)
    expect(rows.nth(4)).to_contain_text("feasible")  # newest first: trial 0 last
    expect(rows.nth(1)).to_contain_text("pruned")
    expect(rows.nth(3)).to_contain_text("infeasible")

    with page.expect_download() as download:
        page.locator("#trials-csv").click()
    exported = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [r["number"] for r in exported] == ["0", "2", "4"]  # feasible only
    assert exported[0]["gzip_bytes"] == "4000" and exported[0]["chain"] == "pruning"

    page.locator("#include-infeasible").check()
    expect(page.locator("section.card", has_text="Best (all trials)").locator("tbody tr").first).to_contain_text("#1")
    expect(page.locator("#trials-csv")).to_have_attribute(
        "href", f"/api/studies/{study['id']}/trials.csv?include_infeasible=true"
    )
    with page.expect_download() as download:
        page.locator("#trials-csv").click()
    every = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [r["number"] for r in every] == ["0", "1", "2", "3", "4"]

    # A trial's run links to its run page, which names the trial and links back to the study.
    run_id = study["runs"][1]
    rows.nth(3).locator(f'a[href="/runs/{run_id}"]').click()
    page.wait_for_url(f"**/runs/{run_id}")
    expect(page.locator("#run-context")).to_contain_text(f"trial 1 of study #{study['id']}")
    page.locator("#run-study").click()
    page.wait_for_url(f"**/studies/{study['id']}")
    expect(page.locator("#study-status")).to_contain_text("finished")
    assert dashboard.console_errors == [] and dashboard.csp_violations(page) == []


def test_the_buttons_pause_resume_extend_and_stop_the_study(
    dashboard: Dashboard, study: dict[str, Any], live_stack: Any
) -> None:
    page = dashboard.open(f"/studies/{study['id']}")
    status = page.locator("#study-status .badge")
    expect(status).to_have_text("finished")
    button = {n: page.get_by_role("button", name=n, exact=True) for n in ("Pause", "Resume", "Stop")}
    button["Extend"] = page.get_by_role("button", name="Extend +10 trials")
    for name in ("Pause", "Resume", "Stop"):
        expect(button[name]).to_be_disabled()  # a finished study can only be extended

    button["Extend"].click()  # the budget was spent: 10 more trials and it runs again
    expect(status).to_have_text("running")
    budget = page.locator("section.card", has_text="Budget")
    expect(budget.locator("tr", has_text="trials")).to_contain_text("10")  # left
    button["Pause"].click()
    expect(status).to_have_text("paused")
    expect(button["Resume"]).to_be_enabled()
    button["Resume"].click()
    expect(status).to_have_text("running")
    page.once("dialog", lambda d: d.accept())
    button["Stop"].click()
    expect(status).to_have_text("stopped")
    expect(page.locator("#study-status")).to_contain_text("stopped by user")
    for b in button.values():
        expect(b).to_be_disabled()

    detail = live_stack.client.http.get(f"/api/studies/{study['id']}").json()
    assert detail["status"] == "stopped" and detail["budget"]["limits"]["max_trials"] == 15
    # Trials asked while it ran again are cancelled by the stop; the five told ones are untouched.
    assert [t["state"] for t in detail["trials"][:5]] == ["complete", "complete", "complete", "pruned", "complete"]
    for t in detail["trials"][5:]:
        live_stack.client.wait_terminal(t["run_id"], timeout=120)
    assert dashboard.console_errors == []
