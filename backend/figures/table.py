"""The compare table: one row per measured variant, with deltas against a baseline.

Pure functions over plain mappings (the route turns store records into dicts), so the same
rows feed the JSON API, the CSV/JSON exports, the figures and the HTML report.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from backend.figures.pareto import pareto_flags
from backend.figures.text import finite
from runspec.vocabulary import REFERENCE_FORMATS

CSV_COLUMNS = (
    "run_id",
    "run_name",
    "variant_id",
    "format",
    "technique",
    "accuracy",
    "delta_accuracy",
    "precision",
    "recall",
    "f1",
    "size_bytes",
    "size_ratio",
    "gzip_bytes",
    "params",
    "nonzero_params",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_ratio",
    "pareto",
)
_COPIED = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "size_bytes",
    "gzip_bytes",
    "params",
    "nonzero_params",
    "latency_p50_ms",
    "latency_p95_ms",
)


def technique_label(run: Mapping[str, Any]) -> str:
    """The recipe's technique chain, e.g. 'pruning → qat'; 'baseline' when there is none."""
    if run.get("kind") == "optimize":
        return "post-training quantization"
    chain = [str(t.get("name")) for t in (run.get("spec") or {}).get("techniques", []) if isinstance(t, Mapping)]
    return " → ".join(chain) if chain else "baseline"


def _reference(variants: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for fmt in REFERENCE_FORMATS:
        for v in variants:
            if v.get("format") == fmt:
                return v
    return variants[0] if variants else None


def _ratio(a: Any, b: Any) -> float | None:
    x, y = finite(a), finite(b)
    return x / y if x is not None and y not in (None, 0.0) else None


def compare_rows(
    runs: Sequence[Mapping[str, Any]],
    variants: Sequence[Mapping[str, Any]],
    *,
    baseline_run_id: int | None = None,
    x: str = "size_bytes",
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Rows in run order, then variant order; and which variant the deltas refer to."""
    by_run: dict[int, list[Mapping[str, Any]]] = {}
    for v in variants:
        by_run.setdefault(int(v["run_id"]), []).append(v)
    baseline_id = (
        baseline_run_id
        if baseline_run_id in by_run
        else (next((int(r["id"]) for r in runs if int(r["id"]) in by_run), None))
    )
    ref = _reference(by_run.get(baseline_id, [])) if baseline_id is not None else None
    rows: list[dict[str, Any]] = []
    for run in runs:
        for v in by_run.get(int(run["id"]), []):
            row: dict[str, Any] = {
                "run_id": int(run["id"]),
                "run_name": run.get("name"),
                "variant_id": v.get("id"),
                "format": v.get("format"),
                "technique": technique_label(run),
            }
            for key in _COPIED:
                value = v.get(key)
                row[key] = finite(value) if isinstance(value, float) else value
            acc, ref_acc = finite(row["accuracy"]), finite(ref.get("accuracy")) if ref else None
            row["delta_accuracy"] = acc - ref_acc if acc is not None and ref_acc is not None else None
            row["size_ratio"] = _ratio(row["size_bytes"], ref.get("size_bytes")) if ref else None
            row["latency_ratio"] = _ratio(row["latency_p50_ms"], ref.get("latency_p50_ms")) if ref else None
            rows.append(row)
    for row, on_front in zip(rows, pareto_flags(rows, x, "accuracy"), strict=True):
        row["pareto"] = on_front
    baseline = None
    if ref is not None:
        baseline = {"run_id": baseline_id, "variant_id": ref.get("id"), "format": ref.get("format")}
    return rows, baseline


def _cell(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to spreadsheet programs: neutralize user text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def rows_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()
