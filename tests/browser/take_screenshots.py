"""Screenshots of every page at 1280×800 for docs/screenshots (run by hand, not a test).

    python -m tests.browser.take_screenshots http://127.0.0.1:8000 TOKEN RUN_ID RUN_IDS
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.conftest import ARGS, CHROMIUM, VIEWPORT

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def main(url: str, token: str, run_id: str, run_ids: str) -> None:
    pages = {
        "runs": "/",
        "launch": "/launch?mode=sweep",
        "run": f"/runs/{run_id}",
        "compare": f"/compare?runs={run_ids}",
        "workers": "/workers",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{url}/login?token={token}")
        for name, path in pages.items():
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(1500)  # let Plotly finish its transitions
            page.screenshot(path=str(OUT / f"{name}.png"))
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
