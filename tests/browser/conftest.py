"""Headless Chromium (Debian's /usr/bin/chromium) against the real stack from tests/conftest.py.

Every page opened through `open_page` records console errors and Content-Security-Policy
violations; tests assert both stay empty, so a page that only works without the CSP fails.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.reliability import figures
from tests.stack import Worker, tiny_spec

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
XSS_NAME = "<img src=x onerror=window.__xss=1>"

# Runs before any page script: CSP violations are counted on window for the test to read.
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@dataclass
class Dashboard:
    """A signed-in browser context on the live stack, and the page problems it saw."""

    url: str
    context: BrowserContext
    console_errors: list[str] = field(default_factory=list)

    def open(self, path: str) -> Page:
        page = self.context.new_page()
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        page.goto(self.url + path)
        return page

    def csp_violations(self, page: Page) -> list[str]:
        return page.evaluate("window.__csp || []")


@pytest.fixture
def dashboard(chromium: Browser, live_stack: Any) -> Iterator[Dashboard]:
    context = chromium.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    # the sign-in link sets the HttpOnly cookie the dashboard's fetches use
    page.goto(f"{live_stack.url}/login?token={live_stack.token}")
    page.close()
    yield Dashboard(live_stack.url, context)
    context.close()


@pytest.fixture(scope="package")
def second_worker(live_stack: Any) -> Iterator[Worker]:
    """A second real Celery worker on the live stack's queue while the browser tests run, so
    their batches of runs (the shared runs below, the sweep launched from the form) train two
    at a time on two cores. Package-scoped: it stops (a warm shutdown: after its job) when the
    last browser test has run, and the tests after them meet the live stack's one worker (some
    count its job processes). Nothing in tests/browser asserts which worker ran a run."""
    worker = Worker(live_stack.env, log=live_stack.logs / "browser-worker.log", name="browser@%h")
    yield worker
    worker.stop()


# The trained runs below are shared by every browser module: training is what the browser tier
# spends its time on, and no test needs a run of its own to read. They are submitted at once
# (two workers train them) and waited for together. Tests may open, sort, compare and export
# these runs; none may change them (cancel, tag, rename, finish, log points) or add a run to
# their experiments (the sort test counts the ship experiment's four runs).


@pytest.fixture(scope="package")
def _trained(live_stack: Any, second_worker: Worker) -> dict[str, Any]:
    client = live_stack.client
    ship = f"ship-{secrets.token_hex(3)}"
    specs = {
        # ship_runs
        "int8-only": tiny_spec("int8-only", experiment=ship, exports=["int8"]),
        "prune-int8": tiny_spec(
            "prune-int8",
            experiment=ship,
            exports=["float32", "int8"],
            training={"epochs": 2, "batch_size": 32, "log_every_n_batches": 2},
            techniques=[{"name": "pruning", "target_sparsity": 0.8, "epochs": 1}],
        ),
        "f16": tiny_spec(
            "f16",
            experiment=ship,
            exports=["float32", "float16"],
            training={"epochs": 1, "batch_size": 32, "log_every_n_batches": 5},
        ),
        # three_runs' own
        "evil": tiny_spec(
            XSS_NAME,
            experiment=f"browser-{secrets.token_hex(3)}",
            exports=["float32", "float16"],
            tags=["<b>tag</b>"],
            notes="<script>window.__xss=1</script>",
            techniques=[{"name": "clustering", "number_of_clusters": 8, "epochs": 1}],
        ),
    }
    runs = {k: client.submit(s) for k, s in specs.items()}
    external = client.http.post("/api/runs", json={"name": "outside", "experiment": ship, "external": True}).json()
    client.http.post(f"/api/runs/{external['id']}/finish", json={"status": "succeeded"})
    done = {k: client.wait_terminal(r["id"], timeout=600) for k, r in runs.items()}
    for run in done.values():
        assert run["status"] == "succeeded", (run["name"], run["error"])
    return {"ship_experiment": ship, **done}


@pytest.fixture(scope="package")
def ship_runs(_trained: dict[str, Any]) -> dict[str, Any]:
    """An int8-only run, a prune+int8 run, a float16 run and an external run (no model), in
    an experiment of their own. The pruned run logs every 2 batches and has one technique
    phase: the run-charts tests read its curves (smoothing, phase mark, x axes)."""
    return {"experiment": _trained["ship_experiment"], **{k: _trained[k] for k in ("int8-only", "prune-int8", "f16")}}


@pytest.fixture(scope="package")
def three_runs(_trained: dict[str, Any]) -> list[dict[str, Any]]:
    """Three finished runs with different techniques; one is named like an XSS payload.

    The first two are ship_runs' (no technique with float32 + float16, then pruning with float32
    + int8); the third is a clustering run with the markup name, tags and notes, in an
    experiment of its own. The first is the compare page's baseline."""
    return [_trained["f16"], _trained["prune-int8"], _trained["evil"]]


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    figures.terminal_summary(terminalreporter)  # the run page's timings at the key limit
