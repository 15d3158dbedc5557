"""Zoo coverage (issue 17): for each model source, the compatibility preflight's prediction and
whether int8 PTQ, pruning, QAT and clustering complete end to end through run_job, at tiny scale
(32x32 inputs, small widths, random weights, a few hundred digits images, 1 epoch + 1 fine-tune
epoch). Writes bench/results/zoo_coverage.json and prints the markdown table of docs/results.md.

    nice -n 5 .venv/bin/python bench/zoo_coverage.py [--only mobilenet_v2,resnet50] [--sources extra.json]

`SOURCES` is data: an architecture (ModelSpec fields), a tf-keras `.keras` model file
(`{"name": ..., "model_file": "path"}`) or an uploaded model (`{"name": ..., "upload_file":
"path"}`, taken the way an upload is); the three user models of bench/user_models.py are added
unless --no-user-models; `--sources FILE` appends a JSON list of such entries. Targets: int8 PTQ 100 %, pruning >= 90 %,
QAT >= 70 %, and 0 surprises (no technique the preflight called supported fails).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.user_models import user_sources  # noqa: E402
from worker.engine import tfsetup  # noqa: E402,F401 - first: TF_USE_LEGACY_KERAS before TensorFlow
from worker.engine.coverage import TECHNIQUES, Outcome, Source, SourceResult, cover, totals  # noqa: E402

SIZE = 32
SOURCES: list[dict[str, Any]] = [
    {
        "name": "mobilenet_v2",
        "architecture": {"architecture": "mobilenet_v2", "width_multiplier": 0.35, "input_size": SIZE},
    },
    {
        "name": "mobilenet_v3_small",
        "architecture": {"architecture": "mobilenet_v3_small", "width_multiplier": 0.35, "input_size": SIZE},
    },
    {"name": "efficientnet_b0", "architecture": {"architecture": "efficientnet_b0", "input_size": SIZE}},
    {"name": "resnet50", "architecture": {"architecture": "resnet50", "input_size": SIZE}},
]
BASE: dict[str, Any] = {
    "dataset": {"name": "digits", "limit_train": 300, "limit_test": 100, "validation_split": 0.0},
    "training": {"epochs": 1, "batch_size": 32, "log_every_n_batches": 5},
    "measurement": {"latency_runs": 10, "warmup_runs": 1, "throughput_batch": 8},
    "export_options": {"representative_samples": 50},
}
TARGETS = {"int8_ptq": 1.0, "pruning": 0.9, "qat": 0.7}


def table(results: list[SourceResult]) -> str:
    """The markdown table of docs/results.md: one row per source, one column per technique."""
    head = "| model | params | " + " | ".join(TECHNIQUES) + " |"
    lines = [head, "|" + " --- |" * (len(TECHNIQUES) + 2)]
    for r in results:
        cells = []
        for t in TECHNIQUES:
            o = r.outcomes[t]
            mark = ("ok" if o.ok else "fails") + (" (predicted)" if o.predicted == o.ok else "")
            mark += " **surprise**" if o.surprise else ""
            mark += " (preflight: no)" if (not o.predicted) and o.ok else ""
            cells.append(f"{mark}, {o.seconds:.0f} s")
        lines.append(f"| {r.name} | {r.params if r.params is not None else '—'} | " + " | ".join(cells) + " |")
    summary = totals(results)
    lines.append(
        "| **completed** | | "
        + " | ".join(
            f"{summary[t]['completed']}/{summary[t]['sources']} ({summary[t]['share']:.0%}), "
            f"{summary[t]['surprises']} surprises"
            for t in TECHNIQUES
        )
        + " |"
    )
    return "\n".join(lines)


def _load(saved: dict[str, Any]) -> SourceResult:
    """A SourceResult from its as_dict() form (bench/results/zoo_coverage.json)."""
    outcomes = {t: Outcome(**{k: v for k, v in o.items() if k != "surprise"}) for t, o in saved["outcomes"].items()}
    return SourceResult(saved["name"], saved["params"], saved["preflight"], outcomes, saved.get("error"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated source names")
    ap.add_argument("--sources", type=Path, help="a JSON list of extra sources (architecture or model_file)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/zoo_coverage.json"))
    ap.add_argument("--no-user-models", action="store_true", help="leave out the three user models")
    ap.add_argument(
        "--keep",
        action="store_true",
        help="with --only: keep the other sources' results from --out (one table, re-running part of it)",
    )
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="zoo-coverage-") as tmp:
        users = [] if args.no_user_models else user_sources(Path(tmp))
        entries = SOURCES + users + (json.loads(args.sources.read_text()) if args.sources else [])
        chosen = [s for s in args.only.split(",") if s]
        sources = [Source(**e) for e in entries if not chosen or e["name"] in chosen]
        for source in sources:
            started = time.monotonic()
            result = cover(source, BASE, Path(tmp))
            print(f"{source.name}: {time.monotonic() - started:.0f} s", flush=True)
            for t, o in result.outcomes.items():
                print(f"  {t}: predicted={o.predicted} ok={o.ok} {o.error or ''}", flush=True)
            results.append(result)
    if args.keep and args.out.exists():
        done = {r.name for r in results}
        kept = [_load(r) for r in json.loads(args.out.read_text())["results"] if r["name"] not in done]
        order = [e["name"] for e in entries]
        results = sorted(kept + results, key=lambda r: order.index(r.name) if r.name in order else len(order))
    summary = totals(results)
    held = {t: summary[t]["share"] >= goal for t, goal in TARGETS.items() if t in summary}
    held["no_surprises"] = all(v["surprises"] == 0 for v in summary.values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "base": BASE,
                "sources": entries,
                "results": [r.as_dict() for r in results],
                "totals": summary,
                "targets_held": held,
            },
            indent=2,
        )
    )
    print(table(results))
    print(json.dumps(held))


if __name__ == "__main__":
    main()
