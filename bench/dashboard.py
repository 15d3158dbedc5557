"""Time until the compare page for N runs (100 x 4 metrics x 10,000 steps, the database seeded by
`bench/compare_query.py --keep`) is interactive in headless Chromium (Playwright driving
/usr/bin/chromium): from navigation start until the three figures are drawn by Plotly and the
main thread runs the next queued task. Median of --repeats page loads.

    .venv/bin/python bench/dashboard.py [--runs 100]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx
from harness import REPO, machine, median, stack  # type: ignore[import-not-found]

DB = Path("/tmp/ob-bench-compare/compare-100x10000.db")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

_DRAWN_JS = """
() => ["fig-tradeoff", "fig-latency", "fig-loss"].every((id) => document.querySelector(`#${id} .main-svg`))
"""
# The first moment after the figures are drawn at which the main thread runs a queued task.
_IDLE_JS = "() => new Promise((r) => setTimeout(() => r(performance.now()), 0))"


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--db", type=Path, default=DB)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "dashboard.json")
    args = ap.parse_args()
    res: dict[str, Any] = {"machine": machine(), "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="ob-dash-") as tmp, \
            stack(Path(tmp), db_url=f"sqlite:///{args.db}") as st:
        ids = [r["id"] for r in httpx.get(f"{st.url}/api/runs", headers=st.headers(),
                                          params={"experiment": "compare-bench", "limit": 1000}).json()["data"]]
        sel = ",".join(map(str, sorted(ids)[:args.runs]))
        api = httpx.get(f"{st.url}/api/compare", params={"runs": sel}, headers=st.headers(), timeout=600)
        res["api_status"] = api.status_code
        if api.status_code != 200:
            res["api_detail"] = api.json().get("detail")
            print(json.dumps(res, indent=2))
            raise SystemExit(f"/api/compare refused {args.runs} runs: nothing to time in the browser")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            times = []
            for _ in range(args.repeats):
                page = browser.new_page()
                page.goto(f"{st.url}/login?token={st.token}")
                page.goto(f"{st.url}/compare?runs={sel}", wait_until="commit")
                page.wait_for_function(_DRAWN_JS, timeout=120_000, polling=20)
                times.append(float(page.evaluate(_IDLE_JS)) / 1000)
                page.close()
            browser.close()
        res["interactive_s_all"] = [round(t, 2) for t in times]
        res["interactive_s_median"] = median(times)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
