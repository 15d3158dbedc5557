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

from tests.stack import tiny_spec

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


@pytest.fixture(scope="session")
def three_runs(live_stack: Any) -> list[dict[str, Any]]:
    """Three finished runs with different techniques; one is named like an XSS payload."""
    client = live_stack.client
    exp = f"browser-{secrets.token_hex(3)}"
    specs = [
        tiny_spec("baseline", experiment=exp, exports=["float32", "int8"], tags=["baseline"]),
        tiny_spec(
            "pruned",
            experiment=exp,
            exports=["float32", "int8"],
            techniques=[{"name": "pruning", "target_sparsity": 0.7, "epochs": 1}],
        ),
        tiny_spec(
            XSS_NAME,
            experiment=exp,
            exports=["float32", "float16"],
            tags=["<b>tag</b>"],
            notes="<script>window.__xss=1</script>",
            techniques=[{"name": "clustering", "number_of_clusters": 8, "epochs": 1}],
        ),
    ]
    runs = [client.submit(s) for s in specs]
    done = [client.wait_terminal(r["id"], timeout=600) for r in runs]
    for run in done:
        assert run["status"] == "succeeded", (run["name"], run["error"])
    return done
