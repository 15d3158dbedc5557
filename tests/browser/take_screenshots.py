"""Screenshots of every page at 1280×800 for docs/screenshots (run by hand, not a test).

    python -m tests.browser.take_screenshots http://127.0.0.1:8000 TOKEN RUN_ID RUN_IDS [EXTERNAL_RUN_ID]

RUN_ID: a run with a technique phase (its page shows the curves, the phase mark and the model to
ship); RUN_IDS: the compare selection; EXTERNAL_RUN_ID: a run logged by a script.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.conftest import ARGS, CHROMIUM, VIEWPORT

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def main(url: str, token: str, run_id: str, run_ids: str, external_id: str | None = None) -> None:
    pages = {
        "runs": "/",
        "launch": "/launch?mode=sweep",
        "run": f"/runs/{run_id}?smooth=0.6",
        "compare": f"/compare?runs={run_ids}",
        "workers": "/workers",
    }
    if external_id:
        pages["run-external"] = f"/runs/{external_id}"
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        signed_out = browser.new_page(viewport=VIEWPORT)
        signed_out.goto(url + "/")  # no cookie: the sign-in page
        signed_out.wait_for_url("**/login**")
        signed_out.wait_for_timeout(500)
        signed_out.screenshot(path=str(OUT / "signin.png"))
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{url}/login?token={token}")
        for name, path in pages.items():
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(1500)  # let Plotly finish its transitions
            page.screenshot(path=str(OUT / f"{name}.png"))
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:6])
