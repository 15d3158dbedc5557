"""The dashboard in Chromium against the real API and a real Celery worker."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import XSS_NAME, Dashboard
from tests.stack import tiny_spec

pytestmark = pytest.mark.browser

POINTS = """id => {
  const gd = document.getElementById(id);
  if (!gd || !gd.data) return 0;
  return gd.data.reduce((n, t) => n + (t.x || []).filter(v => v !== null).length, 0);
}"""


def test_runs_page_shows_a_run_reach_succeeded_and_its_curve(dashboard: Dashboard, live_stack: Any):
    run = live_stack.client.submit(tiny_spec(f"to-succeed-{secrets.token_hex(2)}"))
    page = dashboard.open("/")
    row = page.locator(f'tr[data-run-id="{run["id"]}"]')
    row.wait_for()
    # the runs page polls; no reload happens between queued and succeeded
    row.locator(".badge", has_text="succeeded").wait_for(timeout=300_000)
    assert row.locator("td.num").first.inner_text() != "–"  # headline accuracy filled in
    row.locator(f'a[data-run-link="{run["id"]}"]').click()
    page.wait_for_url(f"**/runs/{run['id']}")
    page.wait_for_function(f"() => ({POINTS})('chart-loss') > 0")
    keys = page.evaluate("document.getElementById('chart-loss').data.map(t => t.meta.key)")
    assert "loss" in keys and "val_loss" in keys
    assert page.locator("#run-headline").inner_text().count("KiB") >= 2  # model size and gzip size shown
    assert dashboard.csp_violations(page) == []
    assert dashboard.console_errors == []


def test_watch_a_run_curve_grow(dashboard: Dashboard, live_stack: Any):
    spec = tiny_spec(
        f"grows-{secrets.token_hex(2)}",
        # ~10 s of training on a warm worker: several flushes of points (1 s) and page polls
        # (1-1.5 s) while the badge still says running
        training={"epochs": 4, "batch_size": 4, "log_every_n_batches": 5},
    )
    run = live_stack.client.submit(spec)
    page = dashboard.open(f"/runs/{run['id']}")
    # points on the chart while the page still says running ...
    page.wait_for_function(
        f"() => ({POINTS})('chart-loss') > 0 && document.querySelector('.badge').textContent === 'running'",
        timeout=300_000,
    )
    first = page.evaluate(f"({POINTS})('chart-loss')")
    # ... then more points, without a reload
    page.wait_for_function(f"() => ({POINTS})('chart-loss') > {first}", timeout=300_000)
    page.locator(".badge", has_text="succeeded").wait_for(timeout=300_000)
    final = page.evaluate(f"({POINTS})('chart-loss')")
    assert final > first
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    # once finished, the variants and the confusion matrix appear
    page.locator("table.data >> text=tflite-float32").wait_for()
    page.wait_for_function("() => document.getElementById('chart-confusion')?.data?.[0]?.type === 'heatmap'")
    assert dashboard.console_errors == []


def test_launch_a_sweep_from_the_form(dashboard: Dashboard, live_stack: Any):
    exp = f"ui-sweep-{secrets.token_hex(3)}"
    page = dashboard.open("/launch")
    page.locator('[data-path="name"] input').fill("ui-sweep")
    page.locator('[data-path="experiment"] input').fill(exp)
    page.locator('[data-path="training.epochs"] input').fill("1")
    page.locator('[data-path="dataset.limit_train"] input').fill("300")
    page.locator('button[data-mode="sweep"]').click()
    # the default grid row varies the learning rate over two values; the server counts them
    page.locator("#sweep-count", has_text="2").wait_for()
    page.locator("#sweep-add").click()
    rows = page.locator("#sweep-editor .sweep-row")
    rows.nth(1).locator("select").select_option("training.batch_size")
    rows.nth(1).locator("input").fill("16, 32")
    page.locator("#sweep-count", has_text="4").wait_for()
    page.locator("#launch-submit").click()
    page.wait_for_url(f"**/?experiment={exp}")
    listed = live_stack.client.http.get("/api/runs", params={"experiment": exp}).json()
    assert listed["count"] == 4
    grid = {
        (r["spec"]["training"]["optimizer"]["learning_rate"], r["spec"]["training"]["batch_size"])
        for r in listed["data"]
    }
    assert grid == {(0.001, 16), (0.001, 32), (0.01, 16), (0.01, 32)}
    expect(page.locator("#runs-table tbody tr")).to_have_count(4)
    # What this test checks is the grid the form launches; that form-launched runs train to
    # `succeeded` is test_launch_form.py's sweep. Cancelled (and waited for) rather than trained,
    # so the live worker is free for the next test.
    for r in listed["data"]:
        assert live_stack.client.http.post(f"/api/runs/{r['id']}/cancel").status_code in (200, 409)
    for r in listed["data"]:
        live_stack.client.wait_terminal(r["id"], timeout=600)


def test_launch_form_shows_the_api_422_next_to_the_field(dashboard: Dashboard, live_stack: Any):
    before = live_stack.client.http.get("/api/runs", params={"limit": 1}).json()["count"]
    page = dashboard.open("/launch")
    batch = page.locator('[data-path="training.batch_size"]')
    batch.locator("input").fill("0")  # a field constraint: loc names the field
    page.locator("#launch-submit").click()
    expect(batch.locator(".field-error")).to_contain_text("greater than or equal to 1")
    assert batch.locator("input").get_attribute("aria-invalid") == "true"

    batch.locator("input").fill("32")
    epochs = page.locator('[data-path="training.epochs"]')
    epochs.locator("input").fill("0")  # a whole-spec check: the message names the field
    page.locator("#launch-submit").click()
    expect(epochs.locator(".field-error")).to_contain_text("at least 1")
    expect(batch.locator(".field-error")).to_have_text("")
    assert page.url.endswith("/launch")
    assert live_stack.client.http.get("/api/runs", params={"limit": 1}).json()["count"] == before


def test_launch_form_is_generated_from_the_schema(dashboard: Dashboard, live_stack: Any):
    schema = live_stack.client.http.get("/api/techniques").json()["schema"]
    mapping = schema["properties"]["techniques"]["items"]["discriminator"]["mapping"]
    page = dashboard.open("/launch")
    picker = page.locator('[data-path="techniques"] > .toolbar select')
    expect(picker.locator("option")).to_have_count(len(mapping) + 1)  # + the prompt
    options = picker.locator("option").evaluate_all("os => os.map(o => o.value).filter(Boolean)")
    assert sorted(options) == sorted(mapping)
    picker.select_option("pruning")
    assert page.locator('[data-path="techniques.0.target_sparsity"] input').input_value() == "0.8"


def test_compare_three_runs(dashboard: Dashboard, live_stack: Any, three_runs: list[dict]):
    ids = [r["id"] for r in three_runs]
    variants = [v for i in ids for v in live_stack.client.http.get(f"/api/runs/{i}/variants").json()["data"]]
    page = dashboard.open(f"/compare?runs={','.join(map(str, ids))}")
    for fig in ("fig-tradeoff", "fig-latency", "fig-loss"):
        page.wait_for_function(f"() => document.querySelector('#{fig} .main-svg') !== null")
    traces = page.evaluate(
        """id => document.getElementById(id).data.map(t => ({
        role: t.meta && t.meta.role, name: t.name, x: t.x, legend: t.showlegend !== false,
        opacity: t.marker && t.marker.opacity}))""",
        "fig-tradeoff",
    )
    points = [t for t in traces if t["role"] == "variants"]
    # one label per technique: a quantized export is post-training quantization whichever run made it
    assert sorted(t["name"] for t in points if t["legend"]) == [
        "baseline",
        "post-training quantization",
        "pruning",
        "pruning → post-training quantization",
        "weight clustering",
        "weight clustering → post-training quantization",
    ]
    assert sum(len(t["x"]) for t in points) == len(variants)
    (front,) = [t for t in traces if t["role"] == "pareto"]
    assert 1 <= len(front["x"]) <= len(variants)
    opacities = [o for t in points for o in t["opacity"]]
    assert opacities.count(1.0) == len(front["x"])  # everything off the front is dimmed
    bars = page.evaluate(
        "document.getElementById('fig-latency').data.filter(t => t.type === 'bar').reduce((n, t) => n + t.x.length, 0)"
    )
    assert bars == len([v for v in variants if v["format"].startswith("tflite")])  # like with like
    loss_names = page.evaluate("document.getElementById('fig-loss').data.map(t => t.name)")
    assert len(loss_names) == 6  # loss and val_loss per run
    assert page.locator("table.data tbody tr").count() == len(variants)
    assert page.locator("table.data tbody tr.front").count() == len(front["x"])
    # the x-axis switch keeps the selection in the address and redraws
    page.locator('button[data-x="latency_p50_ms"]').click()
    page.wait_for_url("**x=latency_p50_ms**")
    page.wait_for_function(
        "() => document.getElementById('fig-tradeoff').layout.xaxis.title.text.startsWith('Latency')"
    )
    assert f"runs={','.join(map(str, ids))}" in page.url
    assert dashboard.csp_violations(page) == []
    assert dashboard.console_errors == []


def test_compare_many_runs_draws_light_curves_that_name_their_run(dashboard: Dashboard, live_stack: Any):
    # above MANY_RUNS (backend/figures/loss.py) the runs sharing a colour are one trace
    http = live_stack.client.http
    names = [f"{XSS_NAME} {i}" for i in range(14)]
    ids = [http.post("/api/runs", json={"name": n, "external": True}).json()["id"] for n in names]
    for i, run_id in enumerate(ids):
        points = [
            {"key": k, "step": s, "value": 2.0 / (s + 1) + i + (k == "val_loss")}
            for k in ("loss", "val_loss")
            for s in range(0, 50, 5)
        ]
        assert http.post(f"/api/runs/{run_id}/metrics", json={"points": points}).status_code == 200
    page = dashboard.open(f"/compare?runs={','.join(map(str, ids))}")
    page.wait_for_function("() => document.querySelector('#fig-loss .main-svg') !== null")
    traces = page.evaluate("document.getElementById('fig-loss').data.map(t => t.name)")
    assert sorted(set(traces)) == ["loss", "val_loss"] and len(traces) == 20
    # hover a point of the first trace: the label is the run's literal name
    page.locator("#fig-loss").scroll_into_view_if_needed()
    xy = page.evaluate(
        """() => { const gd = document.getElementById('fig-loss'); const t = gd.data[0];
        const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
        return [r.left + gd._fullLayout.xaxis.l2p(t.x[3]), r.top + gd._fullLayout.yaxis.l2p(t.y[3])]; }"""
    )
    page.mouse.move(*xy)
    expect(page.locator("#fig-loss .hoverlayer")).to_contain_text(f"{XSS_NAME} 0 · loss")
    assert page.evaluate("window.__xss") is None
    assert dashboard.csp_violations(page) == []
    assert dashboard.console_errors == []


def test_html_report_opens_with_the_network_blocked(dashboard: Dashboard, three_runs: list[dict], tmp_path: Path):
    ids = ",".join(str(r["id"]) for r in three_runs)
    page = dashboard.open(f"/compare?runs={ids}")
    page.locator("#export-html").wait_for()
    with page.expect_download() as info:
        page.locator("#export-html").click()
    report = tmp_path / "report.html"
    info.value.save_as(report)

    offline = dashboard.context.browser.new_context(viewport={"width": 1280, "height": 800})
    attempted: list[str] = []
    offline.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith("file://")
            else (attempted.append(route.request.url), route.abort())
        ),
    )
    view = offline.new_page()
    view.goto(report.as_uri())
    view.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3")
    assert attempted == []
    assert view.evaluate("window.__xss") is None
    assert XSS_NAME in view.locator("table").first.inner_text()  # then the devices table, when a test measured on one
    offline.close()


@pytest.mark.parametrize("path", ["/", "/runs/{id}", "/compare?runs={ids}", "/launch", "/workers"])
def test_a_run_named_like_markup_never_executes(dashboard: Dashboard, three_runs: list[dict], path: str):
    evil = next(r for r in three_runs if r["name"] == XSS_NAME)
    ids = ",".join(str(r["id"]) for r in three_runs)
    page = dashboard.open(path.format(id=evil["id"], ids=ids))
    page.wait_for_load_state("networkidle")
    if path == "/":
        page.locator(f'tr[data-run-id="{evil["id"]}"]').wait_for()
        assert XSS_NAME in page.locator("#runs-table").inner_text()
        assert "<b>tag</b>" in page.locator("#runs-table").inner_text()
    if path.startswith("/runs"):
        page.wait_for_function("() => document.getElementById('chart-loss')?.data?.length > 0")
        assert XSS_NAME in page.locator("h1").inner_text()
    if path.startswith("/compare"):
        page.wait_for_function("() => document.querySelector('#fig-loss .main-svg') !== null")
        # Plotly shows the escaped label as the literal text
        assert XSS_NAME in page.locator("#fig-loss").inner_text()
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src='x']").count() == 0
    assert dashboard.csp_violations(page) == []


def test_api_docs_work_offline_under_the_strict_csp(dashboard: Dashboard, live_stack: Any):
    """/docs (Swagger UI) and /redoc load every file from the API itself and run under the
    dashboard's CSP; "Try it out" reads the runs with the session cookie."""
    requested: list[str] = []
    dashboard.context.on("request", lambda r: requested.append(r.url))
    page = dashboard.open("/docs")
    assert "script-src 'self';" in page.evaluate("fetch('/docs').then(r => r.headers.get('content-security-policy'))")
    list_runs = page.locator(".opblock-get", has=page.locator("[data-path='/api/runs']"))
    list_runs.first.locator(".opblock-summary").click()
    list_runs.first.locator("button.try-out__btn").click()
    list_runs.first.locator("button.execute").click()
    status = list_runs.first.locator(".live-responses-table tbody td.response-col_status").first
    expect(status).to_have_text("200", timeout=15_000)
    assert page.locator(".opblock").count() >= 25  # every route of the API is listed
    assert dashboard.csp_violations(page) == [] and dashboard.console_errors == []

    page = dashboard.open("/redoc")
    expect(page.locator("h1")).to_contain_text("optiboard", timeout=15_000)
    page.fill("input[placeholder='Search...']", "metrics")
    expect(page.locator("li[data-item-id]", has_text="Log Metrics").first).to_be_visible()
    # ReDoc's footer logo points at its CDN: refused by the CSP, so nothing leaves the machine
    assert [v for v in dashboard.csp_violations(page) if "cdn.redoc.ly" not in v] == []
    fetched = [u for u in requested if u.startswith("http") and not u.startswith(live_stack.url)]
    assert all("cdn.redoc.ly" in u for u in fetched), fetched
