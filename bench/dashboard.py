"""Time until the compare page for N runs (100 x 4 metrics x 10,000 steps, the database seeded by
`bench/compare_query.py --keep`) is interactive in headless Chromium (Playwright driving
/usr/bin/chromium): from navigation start until the three figures are drawn by Plotly and the
main thread runs the next queued task. Median of --repeats page loads, each in a fresh browser
context (nothing cached), with where the time went (HTML, Plotly bundle, /api/compare request).

    .venv/bin/python bench/dashboard.py [--runs 100]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from harness import REPO, machine, median, stack  # type: ignore[import-not-found]

DB = Path("/tmp/ob-bench-compare/compare-100x10000.db")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_DRAWN_JS = """
() => ["fig-tradeoff", "fig-latency", "fig-loss"].every((id) => document.querySelector(`#${id} .main-svg`))
"""
# The first moment after the figures are drawn at which the main thread runs a queued task.
_IDLE_JS = "() => new Promise((r) => setTimeout(() => r(performance.now()), 0))"
# Where the time went (ms from navigation start): the HTML, the Plotly bundle, /api/compare.
_PHASES_JS = """
() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const res = performance.getEntriesByType("resource");
  const one = (part) => res.find((e) => e.name.includes(part));
  const plotly = one("plotly"), api = one("/api/compare");
  return {
    html_ms: nav.responseEnd, dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    plotly_fetched_ms: plotly && plotly.responseEnd, plotly_bytes: plotly && plotly.encodedBodySize,
    api_start_ms: api && api.startTime, api_end_ms: api && api.responseEnd, api_bytes: api && api.encodedBodySize,
    // frontend/js/pages/compare.js measures each Plotly.react
    ...Object.fromEntries(performance.getEntriesByType("measure").filter((m) => m.name.startsWith("draw "))
      .map((m) => [`${m.name.slice(5)}_draw_ms`, m.duration])),
  };
}
"""


def main_thread_cpu_ms(trace: Path) -> float:
    """CPU time of the page's main thread (the tasks' thread durations) in a Chromium trace."""
    doc = json.loads(trace.read_text())
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    main = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("name") == "thread_name" and e.get("args", {}).get("name") == "CrRendererMain"
    }
    return (
        sum(
            e.get("tdur", 0)
            for e in events
            if e.get("name") == "RunTask" and e.get("ph") == "X" and (e.get("pid"), e.get("tid")) in main
        )
        / 1000
    )


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--db", type=Path, default=DB)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "dashboard.json")
    ap.add_argument(
        "--trace",
        type=Path,
        help="write a Chromium performance trace of the last load here (open it in DevTools' Performance panel)",
    )
    ap.add_argument(
        "--cpu",
        action="store_true",
        help="trace every load and report the page's main-thread CPU time, which depends "
        "less on the machine's load than the wall time (tracing adds some wall time)",
    )
    args = ap.parse_args()
    res: dict[str, Any] = {"machine": machine(), "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="ob-dash-") as tmp, stack(Path(tmp), db_url=f"sqlite:///{args.db}") as st:
        ids = [
            r["id"]
            for r in httpx.get(
                f"{st.url}/api/runs", headers=st.headers(), params={"experiment": "compare-bench", "limit": 1000}
            ).json()["data"]
        ]
        sel = ",".join(map(str, sorted(ids)[: args.runs]))
        api_s = []
        for _ in range(3):
            t = time.perf_counter()
            api = httpx.get(f"{st.url}/api/compare", params={"runs": sel}, headers=st.headers(), timeout=600)
            api_s.append(time.perf_counter() - t)
        res["api_status"] = api.status_code
        res["api_http_s_all"] = [round(t, 3) for t in api_s]
        res["api_bytes"] = len(api.content)
        if api.status_code != 200:
            res["api_detail"] = api.json().get("detail")
            print(json.dumps(res, indent=2))
            raise SystemExit(f"/api/compare refused {args.runs} runs: nothing to time in the browser")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            times, phases, cpu = [], [], []
            for i in range(args.repeats):
                page = browser.new_page()  # a new context each time: nothing cached
                page.goto(f"{st.url}/login?token={st.token}")
                trace = args.trace if args.trace and i == args.repeats - 1 else Path(tmp) / "trace.json"
                tracing = args.cpu or trace == args.trace
                if tracing:
                    browser.start_tracing(page=page, path=str(trace), screenshots=False)
                page.goto(f"{st.url}/compare?runs={sel}", wait_until="commit")
                page.wait_for_function(_DRAWN_JS, timeout=120_000, polling=20)
                times.append(float(page.evaluate(_IDLE_JS)) / 1000)
                phases.append(
                    {k: v if not isinstance(v, float) else round(v) for k, v in page.evaluate(_PHASES_JS).items()}
                )
                if tracing:
                    browser.stop_tracing()
                    cpu.append(main_thread_cpu_ms(trace))
                page.close()
            browser.close()
        res["interactive_s_all"] = [round(t, 2) for t in times]
        res["interactive_s_median"] = median(times)
        if args.cpu:
            res["main_thread_cpu_ms_all"] = [round(c) for c in cpu]
            res["main_thread_cpu_ms_median"] = median(cpu)
        res["phases_ms"] = phases
        res["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
