"""Seed groups' two figures (issue 19): (1) a digits run submitted with repeats 5 trains on a
real Celery worker, and the group's 95 % interval is read from GET /api/compare?groups=true —
how long after the last run finished (its stored finished_at) the answer with n=5 and an
interval arrives; (2) the compare page with 20 groups × 5 seeds (synthetic runs written through
the store: two variants and 200-step loss/val_loss curves each) with "Seed groups" on: time from
navigation until the group table and the three figures are drawn and the main thread is idle,
in headless Chromium, median of 3 fresh page loads.

    PYTHONPATH=. .venv/bin/python bench/seed_groups.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import REPO, machine, median, stack  # type: ignore[import-not-found]  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
_READY_JS = """
() => document.querySelector('#group-table') &&
  ["fig-tradeoff", "fig-latency", "fig-loss"].every((id) => document.querySelector(`#${id} .main-svg`))
"""
_IDLE_JS = "() => new Promise((r) => setTimeout(() => r(performance.now()), 0))"


def repeats_latency(url: str, headers: dict[str, str], seeds: int) -> dict[str, Any]:
    spec = {
        "name": "bench-repeats",
        "experiment": "bench-groups",
        "dataset": {"name": "digits"},
        "training": {"epochs": 2, "batch_size": 32},
        "measurement": {"protocol": "quick"},
        "repeats": seeds,
    }
    first = httpx.post(f"{url}/api/runs", json=spec, headers=headers, timeout=30).json()
    ids = first["group_run_ids"]
    started = time.perf_counter()
    while True:
        runs = [httpx.get(f"{url}/api/runs/{i}", headers=headers).json() for i in ids]
        if all(r["status"] in ("succeeded", "failed", "cancelled") for r in runs):
            break
        time.sleep(0.05)
    assert all(r["status"] == "succeeded" for r in runs), [r["error"] for r in runs]
    last = max(dt.datetime.fromisoformat(r["finished_at"].replace("Z", "+00:00")) for r in runs)
    params = {"runs": ",".join(map(str, ids)), "groups": "true"}
    group = httpx.get(f"{url}/api/compare", params=params, headers=headers, timeout=60).json()["groups"]["rows"]
    answered = dt.datetime.now(dt.UTC)
    row = next(r for r in group if r["format"] == "tflite-float32")
    assert row["accuracy_n"] == seeds and row["accuracy_ci_low"] is not None
    t = time.perf_counter()
    httpx.get(f"{url}/api/compare", params=params, headers=headers, timeout=60)
    return {
        "seeds": seeds,
        "training_wall_s": round(time.perf_counter() - started, 1),
        "interval_after_last_finish_s": round((answered - last).total_seconds(), 3),
        "compare_groups_request_s": round(time.perf_counter() - t, 3),
        "accuracy_mean": row["accuracy"],
        "accuracy_ci": [row["accuracy_ci_low"], row["accuracy_ci_high"]],
    }


def seed_synthetic(db_url: str, groups: int, seeds: int, steps: int) -> list[int]:
    from backend.store import metrics, runs
    from backend.store.db import make_engine, make_sessionmaker, unit_of_work
    from runspec.spec import RunSpec
    from tests.factories import make_variant

    rng = random.Random(0)
    ids: list[int] = []
    engine = make_engine(db_url)
    with unit_of_work(make_sessionmaker(engine)) as s:
        for g in range(groups):
            width = 0.25 + 0.05 * g
            for seed in range(seeds):
                spec = RunSpec.model_validate(
                    {
                        "name": f"g{g:02d} [seed={seed}]",
                        "experiment": "bench-groups-ui",
                        "external": False,
                        "model": {"width_multiplier": width},
                        "training": {"seed": seed},
                    }
                )
                run = runs.create_run(s, spec=spec)
                lease = runs.claim_run(s, run_id=run.id, worker="bench")
                acc = 0.80 + 0.008 * g + rng.gauss(0, 0.01)
                size = int(40_000 * width * width) + rng.randrange(0, 200)
                make_variant(s, run.id, "keras", accuracy=acc, size_bytes=size * 3)
                make_variant(
                    s, run.id, "tflite-float32", accuracy=acc, size_bytes=size, latency_p90_ms=0.05 + rng.random() / 100
                )
                pts = [metrics.Point("loss", i, 2.0 / (1 + i / 20) + rng.random() / 20, 0.0) for i in range(steps)]
                pts += [metrics.Point("val_loss", i, 2.1 / (1 + i / 20), 0.0) for i in range(0, steps, 20)]
                metrics.log_batch(s, run_id=run.id, points=pts)
                runs.finish_run(s, run_id=run.id, lease=lease, status="succeeded")
                ids.append(run.id)
    engine.dispose()
    return ids


def page_interactive(url: str, token: str, ids: list[int], repeats: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for _ in range(repeats):
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{url}/login?token={token}")
            page.goto(f"{url}/compare?runs={','.join(map(str, ids))}&groups=1", wait_until="commit")
            page.wait_for_function(_READY_JS, timeout=120_000, polling=20)
            times.append(float(page.evaluate(_IDLE_JS)) / 1000)
            rows = page.locator("#group-table tbody tr").count()
            bars = page.locator("#fig-tradeoff g.errorbar").count()
            page.close()
        browser.close()
    return {
        "interactive_s_all": [round(t, 2) for t in times],
        "interactive_s_median": median(times),
        "group_rows": rows,
        "error_bar_groups_drawn": bars,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "seed_groups.json")
    args = ap.parse_args()
    res: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="ob-groups-") as tmp, stack(Path(tmp), worker=True) as st:
        res["repeats"] = repeats_latency(st.url, st.headers(), args.seeds)
        ids = seed_synthetic(st.db_url, args.groups, args.seeds, args.steps)
        res["compare_page"] = {
            "groups": args.groups,
            "seeds": args.seeds,
            "runs": len(ids),
            **page_interactive(st.url, st.token, ids, args.repeats),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
