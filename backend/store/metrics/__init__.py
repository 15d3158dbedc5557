"""Metric series: the one write path and the one read path, behind a small public face.

- `log_batch` writes points (idempotent per (run, key, step)); `writes` keeps the block summaries.
- `read_series` / `read_series_many` read one or many runs' series, downsampled from the block
  summaries (`reads`) or from a finished run's digests (`digests`).
- `read_wall_times` gives (step, wall time) anchors for charts' time axes (`times`).
- `last_metric_values` gives the value at each series' last step (a run's final metrics).
- `summarize_metrics` gives one value per series: best-epoch, last, min or max (`summaries`).
- `build_digest` packs a finished run's series; `backfill_digests` does it for older runs.

- `list_metric_keys` / `default_metric_keys` read a run's keys by index seeks; `log_batch` refuses
  (TooManyMetricKeys) a batch that would pass the per-run key limit (`keyset`).

Modules: `writes` (points in, blocks refreshed), `keyset` (a run's keys, listed and bounded), `blocks` (appended batches summarised in Python),
`reads` (downsampled reads, the block and digest SQL), `digests` (packed series of finished runs).
"""

from backend.store.metrics.digests import backfill as backfill_digests
from backend.store.metrics.digests import build as build_digest
from backend.store.metrics.keyset import TooManyMetricKeys
from backend.store.metrics.keyset import default_keys as default_metric_keys
from backend.store.metrics.keyset import list_keys as list_metric_keys
from backend.store.metrics.reads import last_values as last_metric_values
from backend.store.metrics.summaries import best_step as best_metric_step
from backend.store.metrics.summaries import summarize as summarize_metrics
from backend.store.metrics.times import read_wall_times
from backend.store.metrics.writes import (
    LEVELS,
    Point,
    claim_batch_key,
    count_points,
    delete_points,
    last_step,
    log_batch,
    metric_keys,
    read_series,
    read_series_many,
    rebuild_blocks,
    record_batch_key,
)

__all__ = [
    "best_metric_step",
    "summarize_metrics",
    "last_metric_values",
    "LEVELS",
    "Point",
    "TooManyMetricKeys",
    "backfill_digests",
    "build_digest",
    "claim_batch_key",
    "count_points",
    "default_metric_keys",
    "delete_points",
    "last_step",
    "list_metric_keys",
    "log_batch",
    "metric_keys",
    "read_series",
    "read_series_many",
    "read_wall_times",
    "rebuild_blocks",
    "record_batch_key",
]
