"""The runs list's parallel-coordinates view (issue 19 item 4): one axis per spec value that
varies among the runs shown, then the headline's accuracy, gzip size and latency.

A pure function over plain run mappings (RunPublic as JSON), so the route and the tests call
it alike. The dashboard draws it with Plotly's `parcoords` trace and brushes it; the table only
says what each axis holds:

- a spec axis with at most CATEGORY_LIMIT distinct values, or with runs that lack the value
  (a sparsity axis when some runs are not pruned), is **ordinal**: the distinct values sorted
  (numbers by value, "none" first), each run at its value's index, the values as tick labels.
  A learning-rate grid of 1e-4, 1e-3, 1e-2 so gets evenly spaced ticks, as a log axis would;
- any other axis is **numeric**, the value itself (Plotly's parcoords has no log axis).

Brushing selects a run when its value on every brushed axis lies in one of that axis's ranges
(frontend/js/pages/runs.js, `brushedRunIds`).

Only runs whose headline has an accuracy are drawn (a queued or failed run has no point on the
metric axes); `left_out` counts the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from backend.figures.table import recipe_columns
from backend.figures.text import finite
from runspec.vocabulary import LOGGED_FORMAT

CATEGORY_LIMIT = 12
NONE_LABEL = "none"
# Spec values that can get an axis (recipe_columns' keys, plus the training seed and the
# technique chain), in axis order, with their labels.
SPEC_AXES: tuple[tuple[str, str], ...] = (
    ("spec_architecture", "architecture"),
    ("width_multiplier", "width"),
    ("optimizer", "optimizer"),
    ("learning_rate", "learning rate"),
    ("batch_size", "batch size"),
    ("epochs", "epochs"),
    ("chain", "techniques"),
    ("spec_target_sparsity", "sparsity"),
    ("spec_number_of_clusters", "clusters"),
    ("spec_temperature", "temperature"),
    ("spec_alpha", "alpha"),
    ("training_seed", "seed"),
    ("spec_dataset", "dataset"),
    ("exports", "exports"),
)
# The headline's figures, always shown (runspec.vocabulary.HEADLINE_FIELDS).
METRIC_AXES: tuple[tuple[str, str], ...] = (
    ("accuracy", "accuracy"),
    ("gzip_bytes", "gzip size (bytes)"),
    ("latency_p90_ms", "latency p90 (ms)"),
)


def _spec_values(run: Mapping[str, Any]) -> dict[str, Any]:
    spec = run.get("spec") or {}
    names = [str(t.get("name")) for t in spec.get("techniques") or [] if isinstance(t, Mapping)]
    return {
        **recipe_columns(run),
        "chain": " → ".join(names) if names else NONE_LABEL,
        "training_seed": (spec.get("training") or {}).get("seed"),
    }


def _sort_key(value: Any) -> tuple[int, float, str]:
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return (2, 0.0, str(value))
    return (1, float(value), "")


def _label(value: Any) -> str:
    if value is None:
        return NONE_LABEL
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parcoords_table(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Columns and rows of the parallel-coordinates view of `runs` (RunPublic mappings).

    Returns {"columns": [...], "rows": [...], "left_out": int}. A column is
    {"key", "label", "kind": "ordinal" | "numeric", "ticks": [labels] (ordinal only), "group":
    "spec" | "metric"}; a row is {"run_id", "name", "values": [one per column]}, where an ordinal
    column's value is the index of the run's value in "ticks" and a numeric one the value (float;
    accuracy a fraction, gzip size bytes, latency milliseconds). Spec columns are those whose
    value differs between two drawn runs; a metric column is left out when a drawn run's headline
    lacks it (latency when measurement was off: a line cannot skip an axis)."""
    drawn = [
        r
        for r in runs
        if (r.get("headline") or {}).get("accuracy") is not None
        and (r.get("headline") or {}).get("format") != LOGGED_FORMAT
    ]
    specs = [_spec_values(r) for r in drawn]
    columns: list[dict[str, Any]] = []
    values_by_column: list[list[Any]] = []
    for key, label in SPEC_AXES:
        values = [s.get(key) for s in specs]
        distinct = sorted({v for v in values}, key=_sort_key)
        if len(distinct) < 2:
            continue  # the same for every run: no axis
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric and len(distinct) > CATEGORY_LIMIT:
            columns.append({"key": key, "label": label, "kind": "numeric", "group": "spec"})
            values_by_column.append([float(v) for v in values if v is not None])  # all numbers here
        else:
            index = {v: i for i, v in enumerate(distinct)}
            ticks = [_label(v) for v in distinct]
            columns.append({"key": key, "label": label, "kind": "ordinal", "ticks": ticks, "group": "spec"})
            values_by_column.append([index[v] for v in values])
    for key, label in METRIC_AXES:
        values = [finite((r.get("headline") or {}).get(key)) for r in drawn]
        if drawn and all(v is not None for v in values):  # a line cannot skip an axis
            columns.append({"key": key, "label": label, "kind": "numeric", "group": "metric"})
            values_by_column.append(values)
    rows = [
        {"run_id": int(r["id"]), "name": r.get("name"), "values": [col[i] for col in values_by_column]}
        for i, r in enumerate(drawn)
    ]
    return {"columns": columns, "rows": rows, "left_out": len(runs) - len(drawn)}
