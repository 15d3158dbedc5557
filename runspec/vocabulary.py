"""The small vocabularies every part of optiboard shares, defined once.

The store, the API, the figures, the worker and the client import these; the dashboard reads them
from `GET /api/vocabulary` instead of keeping copies. Standard library only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args


class RunStatus(StrEnum):
    """A run's life: queued → running → succeeded | failed | cancelled. Terminal states never
    change (a retry is a new run)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


RUN_STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus)
TERMINAL_STATUSES: frozenset[str] = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
# Only these may be retried (as a new run); a succeeded run is re-run by submitting its spec.
RETRYABLE_STATUSES: frozenset[str] = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})

# An uploaded model's state (issue 17): "ready" once the sandboxed check has produced its
# preflight (the check runs during the upload, so a stored model is ready; a refused one is not
# stored); "measurement_only" for a .tflite file, which no technique can change.
MODEL_STATUSES: tuple[str, ...] = ("ready", "measurement_only")

# TFLite exports a spec may ask for (`exports`), and the variant format each one produces.
ExportFormat = Literal["float32", "dynamic", "float16", "int8"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
KERAS_FORMAT = "keras"
# A run that starts from an uploaded model (model.upload_id) measures that model as it came
# first, under this format: the user's own baseline on the Pareto chart (issue 17).
UPLOADED_FORMAT = "uploaded"
UPLOADED_NAME = "your model as uploaded"
VARIANT_FORMATS: tuple[str, ...] = (KERAS_FORMAT, *(f"tflite-{e}" for e in EXPORT_FORMATS), UPLOADED_FORMAT)

# A variant's figures from the latency protocol and the memory estimate (issue 18, migration
# 0009; worker.engine.latency and worker.engine.footprint say how each is measured). Headline
# latency figures are at `latency_threads` (1) interpreter threads, batch 1, in milliseconds;
# the `mcu_*` figures exist for int8 TFLite variants only. None where not measured.
VARIANT_PROTOCOL_FIELDS: tuple[str, ...] = (
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "latency_std_ms",
    "latency_min_ms",
    "latency_count",
    "latency_cv",
    "latency_unstable",
    "latency_threads",
    "init_ms",
    "first_inference_ms",
    "load_avg_1m",
    "peak_memory_bytes",
    "mcu_ram_bytes",
    "mcu_flash_bytes",
)

# The headline variant of a run, the model it speaks for: the first format of this list that the
# run produced. That is the deployable model the run was made for, the last export of its chain
# (int8 before float16 before dynamic before float32), and the Keras model only when nothing
# else exists (issue 16). The runs list, the run page, the CLI and the client all show it, named.
HEADLINE_FORMATS: tuple[str, ...] = (
    "tflite-int8",
    "tflite-float16",
    "tflite-dynamic",
    "tflite-float32",
    "keras",
    UPLOADED_FORMAT,
)
# What a run's headline carries (`RunPublic.headline`): the variant's format and figures.
HEADLINE_FIELDS: tuple[str, ...] = (
    "format",
    "accuracy",
    "size_bytes",
    "gzip_bytes",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_unstable",
)
# An external run without a measured model speaks through its final logged accuracy: the first
# of these keys it logged (validation before training; the names Keras gives the "accuracy",
# "sparse_categorical_accuracy" and "categorical_accuracy" metrics, see keras.metrics).
# Its headline's format is LOGGED_FORMAT and it carries the key it read (`accuracy_key`).
LOGGED_ACCURACY_KEYS: tuple[str, ...] = (
    "val_accuracy",
    "val_sparse_categorical_accuracy",
    "val_categorical_accuracy",
    "accuracy",
    "sparse_categorical_accuracy",
    "categorical_accuracy",
)
LOGGED_FORMAT = "logged"
# Which single value of a logged series tables, exports and charts show (backend.store.metrics.
# summaries): the value at the best validation epoch (the default), the last, the minimum, the maximum.
SUMMARIES: dict[str, str] = {
    "best": "at the best validation epoch (lowest val_loss, else highest val_accuracy)",
    "last": "last value",
    "min": "minimum",
    "max": "maximum",
}
DEFAULT_SUMMARY = "best"
# The best epoch: the step of the first of these keys the run logged, at its min or max.
BEST_EPOCH_KEYS: tuple[tuple[str, str], ...] = (("val_loss", "min"), ("val_accuracy", "max"))
# Logged series the compare table and exports summarise into columns of their own.
SUMMARY_COLUMNS: tuple[str, ...] = ("val_accuracy", "val_loss", "accuracy", "loss")
# The variant of a baseline run that compare deltas refer to, best first: the user's own model as
# it came when the run started from an upload.
REFERENCE_FORMATS: tuple[str, ...] = (UPLOADED_FORMAT, "tflite-float32", "keras")


def logged_headline(final_metrics: dict[str, float | None] | None) -> dict[str, object] | None:
    """The headline of an external run without a measured model: {format: "logged", accuracy,
    accuracy_key, and None for the size and latency fields}, from the run's final logged values
    (`final_metrics`, {key: last value}); None when it logged none of LOGGED_ACCURACY_KEYS."""
    for key in LOGGED_ACCURACY_KEYS:
        value = (final_metrics or {}).get(key)
        if isinstance(value, int | float):
            return {**dict.fromkeys(HEADLINE_FIELDS), "format": LOGGED_FORMAT, "accuracy": value, "accuracy_key": key}
    return None


def headline_rank(fmt: str) -> int:
    """Position of `fmt` in HEADLINE_FORMATS (lower wins); unknown formats rank last."""
    try:
        return HEADLINE_FORMATS.index(fmt)
    except ValueError:
        return len(HEADLINE_FORMATS)


# Accuracy-versus-cost chart: x key → axis title. All are "smaller is better" costs on a log axis.
X_AXES: dict[str, str] = {
    "size_bytes": "Model size on disk (KiB/MiB, log)",
    "gzip_bytes": "Gzipped size (KiB/MiB, log)",
    "params": "Parameters (log)",
    "latency_p50_ms": "Latency p50 (ms, log)",
    "latency_p90_ms": "Latency p90 (ms, log)",
    "peak_memory_bytes": "Peak memory (KiB/MiB, log)",
    "mcu_ram_bytes": "Microcontroller RAM, int8 (KiB/MiB, log)",
}

# The run page's curves: x key → axis title. Step is the training batch; epoch is interpolated
# between the run's "epoch" points; the times between (step, wall time) anchors of its points.
RUN_CHART_X_AXES: dict[str, str] = {
    "step": "Step (training batch)",
    "epoch": "Epoch",
    "relative": "Relative time (s)",
    "wall": "Wall time",
}

# Technique names as users read them (the spec's `name` values are short: "qat"). Post-training
# quantization is what the TFLite converter does to int8/float16/dynamic exports.
TECHNIQUE_NAMES: dict[str, str] = {
    "pruning": "pruning",
    "qat": "quantization-aware training",
    "clustering": "weight clustering",
    "distillation": "knowledge distillation",
    "fine_tuning": "plain fine-tuning",
}
PTQ_NAME = "post-training quantization"

# Measurements on a target device (issue 18 item 4). A worker started with `--device LABEL`
# consumes only the Celery queue DEVICE_QUEUE_PREFIX + LABEL; a measurement requested for LABEL
# is sent there and nowhere else. A label is a short name for a kind of device ("rpi4",
# "jetson-nano"): letters, digits, "-" and "_", as a Celery queue name needs no escaping.
DEVICE_LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"
DEVICE_QUEUE_PREFIX = "measure."
# A device measurement's life: queued → running → succeeded | failed; terminal states never change
# (measuring again is a new measurement).
MEASUREMENT_STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed")
# A study's life (issue 20): queued → running ⇄ paused → stopped | finished | failed. An active
# study may still ask for trials (and its budget's "left" means something); stopped, finished and
# failed (the baseline run a study from an uploaded model created did not succeed) are terminal.
STUDY_STATUSES: tuple[str, ...] = ("queued", "running", "paused", "stopped", "finished", "failed")
ACTIVE_STUDY_STATUSES: tuple[str, ...] = ("queued", "running", "paused")
# What the compare page calls the measurement the worker that trained a run took itself.
OWN_DEVICE = "worker"

# Ids are 32-bit signed integers on both backends (SQLite's INTEGER PRIMARY KEY allows more, but
# PostgreSQL's SERIAL does not); anything larger cannot exist and is refused before a query.
MAX_ID = 2**31 - 1
# Metric steps are BIGINT; 2**62 keeps step arithmetic (block numbers, +1 cursors) inside int64.
MAX_STEP = 2**62


def as_dict() -> dict[str, object]:
    """The vocabulary as JSON-ready data (`GET /api/vocabulary`)."""
    return {
        "statuses": list(RUN_STATUSES),
        "terminal_statuses": [s for s in RUN_STATUSES if s in TERMINAL_STATUSES],
        "retryable_statuses": [s for s in RUN_STATUSES if s in RETRYABLE_STATUSES],
        "export_formats": list(EXPORT_FORMATS),
        "variant_formats": list(VARIANT_FORMATS),
        "headline_formats": list(HEADLINE_FORMATS),
        "headline_fields": list(HEADLINE_FIELDS),
        "reference_formats": list(REFERENCE_FORMATS),
        "logged_accuracy_keys": list(LOGGED_ACCURACY_KEYS),
        "logged_format": LOGGED_FORMAT,
        "summaries": dict(SUMMARIES),
        "default_summary": DEFAULT_SUMMARY,
        "summary_columns": list(SUMMARY_COLUMNS),
        "x_axes": dict(X_AXES),
        "run_chart_x_axes": dict(RUN_CHART_X_AXES),
        "technique_names": dict(TECHNIQUE_NAMES),
        "ptq_name": PTQ_NAME,
        "uploaded_format": UPLOADED_FORMAT,
        "uploaded_name": UPLOADED_NAME,
        "device_label_pattern": DEVICE_LABEL_PATTERN,
        "measurement_statuses": list(MEASUREMENT_STATUSES),
        "study_statuses": list(STUDY_STATUSES),
        "active_study_statuses": list(ACTIVE_STUDY_STATUSES),
        "own_device": OWN_DEVICE,
        "max_id": MAX_ID,
        "max_step": MAX_STEP,
    }
