"""Seed groups aggregated: per group and per metric the mean, n, standard deviation and 95 %
confidence interval, differences against a baseline group, and mean curves with a band.

A group is the runs that share `runs.group_key` (runspec.groups.group_key). The functions here
are pure over the compare table's rows (backend/figures/table.py `compare_rows`: one row per
measured variant, plain dicts) and over metric series, so the API, its exports and the tests
read the same numbers; the statistics are backend/store/intervals.py's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from backend.store.intervals import mean_interval, welch_difference
from runspec.vocabulary import REFERENCE_FORMATS, SUMMARY_COLUMNS

# The figures aggregated per group row (units: accuracy/precision/recall/f1 fractions 0-1,
# *_bytes bytes, params counts, *_ms milliseconds at batch 1; logged_<key> the summarised
# logged series, as the compare page's `summary` chose).
GROUP_METRICS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "size_bytes",
    "gzip_bytes",
    "params",
    "nonzero_params",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "peak_memory_bytes",
    "mcu_ram_bytes",
    *(f"logged_{k}" for k in SUMMARY_COLUMNS),
    # each member against its own same-budget control (backend/figures/table.py vs_control; the
    # control has the member's seed): the mean over seeds of paired differences, so its interval
    # is the paired Student-t interval of the technique's effect net of extra training
    "vs_control_accuracy",
    "vs_control_f1",
    "vs_control_gzip_ratio",
)
# The figures whose difference against the baseline group is reported with Welch's interval.
DIFFERENCE_METRICS: tuple[str, ...] = (
    "accuracy",
    "f1",
    "size_bytes",
    "gzip_bytes",
    "params",
    "latency_p50_ms",
    "latency_p90_ms",
    *(f"logged_{k}" for k in SUMMARY_COLUMNS),
)
LATENCY_METRICS = ("latency_p50_ms", "latency_p90_ms")
# Columns copied from a group's first member row: the recipe (identical across the group but
# for the seed) and what the variant is.
_COPIED = (
    "format",
    "runtime",
    "technique",
    "optimizer",
    "learning_rate",
    "batch_size",
    "epochs",
    "width_multiplier",
    "spec_architecture",
    "spec_dataset",
    "spec_target_sparsity",
    "spec_number_of_clusters",
    "spec_temperature",
    "spec_alpha",
    "technique_settings",
    "exports",
    "summary",
    "device",
)
_SEED_SUFFIX = re.compile(r"\s*\[seed=\d+\]$")


def group_name(names: Sequence[str]) -> str:
    """A group's label: its first member's name without the " [seed=N]" that repeats add."""
    return _SEED_SUFFIX.sub("", names[0]) if names else ""


# Figures that cannot be negative: a Student-t interval over few noisy seeds can reach below 0
# (a latency of 1.3 ± 2.9 ms); its lower end is cut at 0 (fractions also at 1), the half-width
# is kept as computed.
NON_NEGATIVE = frozenset(
    m
    for m in GROUP_METRICS
    if m.endswith(("_bytes", "_ms")) or m in ("params", "nonzero_params", "vs_control_gzip_ratio")
)

FRACTIONS = frozenset(("accuracy", "precision", "recall", "f1"))  # and their interval within [0, 1]


def _stat_columns(metric: str, values: Sequence[Any]) -> dict[str, Any]:
    s = mean_interval(values)
    low, high = s.ci_low, s.ci_high
    if low is not None and (metric in NON_NEGATIVE or metric in FRACTIONS):
        low = max(0.0, low)
    if high is not None and metric in FRACTIONS:
        high = min(1.0, high)
    return {
        metric: s.mean,
        f"{metric}_n": s.n,
        f"{metric}_std": s.std,
        f"{metric}_ci_low": low,
        f"{metric}_ci_high": high,
        f"{metric}_half_width": s.half_width,
    }


def group_rows(
    rows: Sequence[Mapping[str, Any]],
    runs: Sequence[Mapping[str, Any]],
    *,
    baseline_run_id: int | None = None,
    baseline_format: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One row per (seed group, variant format) in the order the runs are given, and the
    baseline group row's {group_key, format, run_ids}.

    `rows` are compare_rows' rows (one per measured variant, or a `logged` row of an external
    run), `runs` the compared runs as dicts with `id`, `name` and `group_key`. Each group row
    has `group_key`, `group_name`, `run_ids` (one per training seed: of runs sharing a seed, the
    newest; the others in `superseded_run_ids`), `variant_ids`, `n_runs`, the recipe columns of
    its first member, and per metric of GROUP_METRICS the columns `<m>` (the mean), `<m>_n`,
    `<m>_std`, `<m>_ci_low`, `<m>_ci_high`, `<m>_half_width` (None when n < 2: no interval).
    Each row also gets `differences` against the baseline group ({metric: Difference as a dict,
    backend.store.intervals.welch_difference(this group, baseline group)}, latencies against the
    baseline group's row of the same format; empty for the baseline itself) and the flat CSV
    columns `delta_<m>`, `delta_<m>_ci_low`, `delta_<m>_ci_high`, `delta_<m>_significant`
    (True/False, or None with no interval).

    The baseline group is the group of `baseline_run_id` (its `baseline_format` row, else its
    first REFERENCE_FORMATS row), or the first group.
    """
    key_of = {int(r["id"]): str(r.get("group_key") or f"run-{r['id']}") for r in runs}
    names: dict[str, list[str]] = {}
    for r in runs:
        names.setdefault(key_of[int(r["id"])], []).append(str(r.get("name") or ""))
    # one member per training seed: a re-run or retry of a seed already in the group repeats a
    # draw, not a new one, and counting it twice would narrow the interval on no new information;
    # the newest run of each seed (highest id) speaks for it, the others are listed as superseded
    # an external run's spec carries the default seed, not the one its script used: it is its own draw
    seed_of = {
        int(r["id"]): ("run", int(r["id"]))
        if r.get("external") or ((r.get("spec") or {}).get("training") or {}).get("seed") is None
        else r["spec"]["training"]["seed"]
        for r in runs
    }
    by_seed: dict[tuple[str, str, Any], Mapping[str, Any]] = {}
    superseded: dict[tuple[str, str], list[int]] = {}
    for member in rows:
        run_id = int(member["run_id"])
        key = key_of.get(run_id)
        if key is None:
            continue
        slot = (key, str(member.get("format")), seed_of.get(run_id, ("run", run_id)))
        held = by_seed.get(slot)
        if held is not None:
            older, newer = sorted((held, member), key=lambda r: int(r["run_id"]))
            superseded.setdefault(slot[:2], []).append(int(older["run_id"]))
            member = newer
        by_seed[slot] = member
    members: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for (key, fmt, _), member in by_seed.items():
        members.setdefault((key, fmt), []).append(member)
    out: list[dict[str, Any]] = []
    for (key, fmt), part in members.items():
        first = part[0]
        row: dict[str, Any] = {
            "group_key": key,
            "group_name": group_name(names.get(key, [])),
            "run_ids": [int(r["run_id"]) for r in part],
            "variant_ids": [r.get("variant_id") for r in part],
            "n_runs": len(part),
            "superseded_run_ids": sorted(superseded.get((key, fmt), [])),
            # the first member: where a click on the group's point leads
            "run_id": int(first["run_id"]),
            "control_run_ids": [int(r["control_run_id"]) for r in part if r.get("control_run_id")],
            **{c: first.get(c) for c in _COPIED},
            "format": fmt,
        }
        for metric in GROUP_METRICS:
            row.update(_stat_columns(metric, [r.get(metric) for r in part]))
        out.append(row)
    baseline = _baseline_row(out, key_of.get(int(baseline_run_id)) if baseline_run_id else None, baseline_format)
    by_key_format = {(r["group_key"], r["format"]): r for r in out}
    values = {(r["group_key"], r["format"]): members[(r["group_key"], r["format"])] for r in out}
    for row in out:
        row["differences"] = {}
        if baseline is not None and row is not baseline:
            for metric in DIFFERENCE_METRICS:
                ref = baseline
                if metric in LATENCY_METRICS:  # a TFLite call against a TFLite call of the same format
                    ref = by_key_format.get((baseline["group_key"], row["format"]))  # type: ignore[assignment]
                if ref is None:
                    continue
                mine = values[(row["group_key"], row["format"])]
                theirs = values[(ref["group_key"], ref["format"])]
                diff = welch_difference([r.get(metric) for r in mine], [r.get(metric) for r in theirs])
                if diff.diff is not None:
                    row["differences"][metric] = diff.as_dict()
        for metric in DIFFERENCE_METRICS:
            d = row["differences"].get(metric) or {}
            row[f"delta_{metric}"] = d.get("diff")
            row[f"delta_{metric}_ci_low"] = d.get("ci_low")
            row[f"delta_{metric}_ci_high"] = d.get("ci_high")
            row[f"delta_{metric}_significant"] = d.get("significant")
        row["is_baseline"] = row is baseline
    reference = None
    if baseline is not None:
        reference = {"group_key": baseline["group_key"], "format": baseline["format"], "run_ids": baseline["run_ids"]}
    return out, reference


def _baseline_row(rows: list[dict[str, Any]], key: str | None, fmt: str | None) -> dict[str, Any] | None:
    measured = [r for r in rows if r["format"] != "logged"] or rows
    if not measured:
        return None
    key = key if key is not None and any(r["group_key"] == key for r in measured) else measured[0]["group_key"]
    mine = [r for r in measured if r["group_key"] == key]
    for want in (fmt, *REFERENCE_FORMATS):
        for r in mine:
            if r["format"] == want:
                return r
    return mine[0]


def mean_curves(
    series: Mapping[int, Mapping[str, Mapping[str, Any]]], run_ids: Sequence[int], key: str
) -> dict[str, Any] | None:
    """The group's mean curve of metric `key` with its 95 % band: {steps, mean, ci_low, ci_high,
    n} (lists of equal length; a band value is None where fewer than 2 members cover the step),
    or None when no member logged `key`.

    `series` maps a run id to its series by key ({"steps": [...], "values": [...]}, as
    backend.store.metrics reads them, possibly downsampled). Members are compared at the steps
    of the member with the most points, inside the steps every member covers; each member is
    linearly interpolated between its own logged steps (np.interp; non-finite points left out),
    so downsampled series whose buckets kept different steps still line up. At each step the
    mean and interval are intervals.mean_interval of the members' values.
    """
    curves = []
    for rid in run_ids:
        s = (series.get(rid) or {}).get(key)
        if not s or not s.get("steps"):
            continue
        pts = [
            (float(x), float(y))
            for x, y in zip(s["steps"], s["values"], strict=False)
            if y is not None and math.isfinite(y)
        ]
        if pts:
            curves.append((np.array([p[0] for p in pts]), np.array([p[1] for p in pts])))
    if not curves:
        return None
    lo = max(c[0][0] for c in curves)
    hi = min(c[0][-1] for c in curves)
    grid_source = max(curves, key=lambda c: len(c[0]))[0]
    grid = grid_source[(grid_source >= lo) & (grid_source <= hi)]
    if grid.size == 0:
        grid = np.array([lo]) if lo <= hi else np.array([], dtype=float)
    stacked = np.vstack([np.interp(grid, xs, ys) for xs, ys in curves]) if grid.size else np.empty((0, 0))
    means, lows, highs = [], [], []
    for j in range(grid.size):
        m = mean_interval(stacked[:, j].tolist())
        means.append(m.mean)
        lows.append(m.ci_low)
        highs.append(m.ci_high)
    return {"steps": [int(x) for x in grid], "mean": means, "ci_low": lows, "ci_high": highs, "n": len(curves)}
