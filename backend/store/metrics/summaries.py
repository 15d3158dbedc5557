"""One number per logged series, chosen by the reader: the last value, the minimum, the maximum,
or the value at the run's best validation epoch (runspec.vocabulary.SUMMARIES).

Why "best" is the default: a run that overfits ends worse than it was, and the last-value
summary MLflow and W&B show by default hides that (W&B #736 "summary of best value, not last",
MLflow #7790 "min/max aggregation of metrics in the runs table"). The best epoch is the step of
the run's lowest `val_loss` (ties: the earliest); a run without `val_loss` uses its highest
`val_accuracy` (runspec.vocabulary.BEST_EPOCH_KEYS). Loss is preferred because it is what the
training minimises and moves in finer steps than the accuracy on a small validation set. A
key's value at the best epoch is its point at the greatest step ≤ that step (the epoch-end
points share the step; a per-batch series gives its latest point); a run with neither key has
no best epoch and its "best" values are its last ones.

Cost per run: one indexed seek per best-epoch key and one per summarised key (primary key
run_id, key, step); min and max one aggregate over the key's points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sqlalchemy import Connection, text

from runspec.vocabulary import BEST_EPOCH_KEYS

_BEST_STEP = {
    "min": text(
        "SELECT step FROM metric_points WHERE run_id = :run AND key = :key AND value IS NOT NULL "
        "ORDER BY value ASC, step ASC LIMIT 1"
    ),
    "max": text(
        "SELECT step FROM metric_points WHERE run_id = :run AND key = :key AND value IS NOT NULL "
        "ORDER BY value DESC, step ASC LIMIT 1"
    ),
}
_AT_OR_BEFORE = text(
    "SELECT value FROM metric_points WHERE run_id = :run AND key = :key AND step <= :step ORDER BY step DESC LIMIT 1"
)
_LAST = text("SELECT value FROM metric_points WHERE run_id = :run AND key = :key ORDER BY step DESC LIMIT 1")
_MIN_MAX = {
    "min": text("SELECT MIN(value) FROM metric_points WHERE run_id = :run AND key = :key"),
    "max": text("SELECT MAX(value) FROM metric_points WHERE run_id = :run AND key = :key"),
}


def best_step(conn: Connection, *, run_id: int) -> int | None:
    """The step of the run's best validation epoch (module docstring), or None."""
    for key, direction in BEST_EPOCH_KEYS:
        step = conn.execute(_BEST_STEP[direction], {"run": run_id, "key": key}).scalar()
        if step is not None:
            return int(step)
    return None


def summarize(
    conn: Connection, *, run_ids: Sequence[int], keys: Sequence[str], how: str
) -> dict[int, dict[str, float | None]]:
    """{run_id: {key: value}} for the keys each run logged, summarised `how` (best, last, min,
    max); NaN is None. Runs with none of the keys map to {}. Raises ValueError for another `how`."""
    if how not in ("best", "last", "min", "max"):
        raise ValueError(f"unknown summary {how!r}")
    out: dict[int, dict[str, float | None]] = {}
    for run_id in run_ids:
        values: dict[str, float | None] = {}
        step = best_step(conn, run_id=run_id) if how == "best" else None
        for key in keys:
            args = {"run": run_id, "key": key}
            if how in _MIN_MAX:
                row = conn.execute(_MIN_MAX[how], args).first()
                present = row is not None and row[0] is not None
            elif step is not None:
                row = conn.execute(_AT_OR_BEFORE, {**args, "step": step}).first()
                present = row is not None
            else:
                row = conn.execute(_LAST, args).first()
                present = row is not None
            if present and row is not None:
                v = row[0]
                values[key] = None if v is None or math.isnan(float(v)) else float(v)
        out[run_id] = values
    return out
