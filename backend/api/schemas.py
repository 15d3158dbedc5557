"""API request and response models (separate from the ORM tables and from the run spec)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from backend.store.records import MeasurementRecord, RunRecord, VariantRecord
from runspec.spec import Tag
from runspec.vocabulary import DEVICE_LABEL_PATTERN, MAX_STEP, ExportFormat, logged_headline

Number = float | str  # non-finite floats travel as "NaN", "Infinity", "-Infinity"


def finite_or_str(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunPublic(BaseModel):
    id: int
    name: str
    experiment_id: int
    experiment: str
    kind: str
    external: bool
    status: str
    spec: dict[str, Any]
    spec_hash: str
    summary: str
    parent_run_id: int | None
    retry_of_run_id: int | None
    control_of_run_id: int | None = Field(description="the run this one is the same-budget control of")
    control_run_id: int | None = Field(
        default=None, description="this run's same-budget control (submitted with spec.control)"
    )
    attempt: int
    max_attempts: int
    worker: str | None
    cancel_requested: bool
    progress: float
    eta_seconds: float | None
    error: str | None
    log_tail: list[str]
    tags: list[str]
    notes: str
    hardware: dict[str, Any]
    train_seconds: float | None
    peak_memory_bytes: int | None
    final_metrics: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    duration_seconds: float | None
    heartbeat_age_s: float | None = Field(
        default=None, description="seconds since the running run's last heartbeat (None unless running)"
    )
    headline: dict[str, Any] | None
    group_key: str = Field(
        description="the run's seed group: SHA-256 of its spec without seeds and labels (runspec.groups); runs "
        "sharing it are repeats of one recipe (GET /api/runs?group=<key> lists them)"
    )
    group_size: int = Field(description="how many runs are in the run's seed group, this one included")
    study_id: int | None = Field(default=None, description="the study this run is a trial of")
    trial_number: int | None = Field(default=None, description="its trial number in that study (0-based)")

    @classmethod
    def of(cls, r: RunRecord) -> RunPublic:
        return cls(**public_run(r))


class RunCreated(RunPublic):
    """A submitted run; with `repeats` > 1 the first of the runs created, and all of them."""

    group_run_ids: list[int] = Field(
        description="every run this submission created, in seed order (one id unless the spec asked for repeats); "
        "the run described by the other fields is the first"
    )


_DERIVED = ("duration_seconds", "heartbeat_age_s")
_RUN_FIELDS = tuple(k for k in RunPublic.model_fields if k in RunRecord.__dataclass_fields__ or k in _DERIVED)


def public_run(r: RunRecord) -> dict[str, Any]:
    """RunPublic's fields as a plain dict: what a hot endpoint encodes with orjson directly
    (the same JSON as RunPublic's, tests/api checks)."""
    now = datetime.now(UTC)  # records carry timezone-aware UTC times
    end = r.finished_at or (now if r.started_at else None)
    duration = (end - r.started_at).total_seconds() if r.started_at and end else None
    beat = r.heartbeat_at if r.status == "running" else None
    derived = {
        "duration_seconds": duration,
        "heartbeat_age_s": max(0.0, (now - beat).total_seconds()) if beat else None,
    }
    out = {k: derived[k] if k in derived else getattr(r, k) for k in _RUN_FIELDS}
    if r.headline is None and r.external:
        out["headline"] = logged_headline(r.final_metrics)
    return out


class RunsPublic(BaseModel):
    data: list[RunPublic]
    count: int


class RunUpdate(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    tags: list[Tag] | None = Field(default=None, max_length=32)
    notes: str | None = Field(default=None, max_length=10_000)


class OptimizeRequest(In):
    exports: list[ExportFormat] = Field(min_length=1, max_length=4)
    name: str | None = Field(default=None, min_length=1, max_length=200)


class VariantPublic(BaseModel):
    id: int
    run_id: int
    format: str
    accuracy: float | None = Field(description="fraction of the test split classified right")
    precision: float | None = Field(
        description=(
            "macro precision over the classes present in the test split, 0 where a class was never predicted "
            "(scikit-learn's labels=np.unique(y_test), zero_division=0); extra.per_class has each class"
        )
    )
    recall: float | None = Field(description="macro recall over the classes present in the test split")
    f1: float | None = Field(description="macro F1 over the classes present in the test split")
    confusion: list[list[int]] = Field(description="K x K counts, rows the true class, columns the predicted one")
    size_bytes: int
    gzip_bytes: int
    params: int
    nonzero_params: int
    sparsity: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    throughput_per_s: float | None
    latency_p90_ms: float | None = Field(
        default=None,
        description="90th percentile of batch-1 latency at latency_threads threads (the headline, MLPerf single-stream)",
    )
    latency_p99_ms: float | None = None
    latency_mean_ms: float | None = None
    latency_std_ms: float | None = Field(default=None, description="standard deviation of the timed runs, ms")
    latency_min_ms: float | None = None
    latency_count: int | None = Field(default=None, description="timed runs behind the latency figures")
    latency_cv: float | None = Field(
        default=None, description="coefficient of variation (std / mean) of the timed runs"
    )
    latency_unstable: bool | None = Field(
        default=None, description="true when the spread stayed above the guard after one re-measurement (machine busy)"
    )
    latency_threads: int | None = Field(default=None, description="interpreter threads of the headline latency figures")
    init_ms: float | None = Field(default=None, description="interpreter load + allocate_tensors, ms")
    first_inference_ms: float | None = Field(default=None, description="the first invoke after allocation, ms")
    load_avg_1m: float | None = Field(default=None, description="1-minute load average during the measurement")
    peak_memory_bytes: int | None = Field(
        default=None, description="peak resident memory growth of a fresh process loading and running the model"
    )
    mcu_ram_bytes: int | None = Field(
        default=None, description="int8: microcontroller arena estimate (peak of simultaneously live activations)"
    )
    mcu_flash_bytes: int | None = Field(default=None, description="int8: microcontroller flash estimate (model bytes)")
    hardware: dict[str, Any]
    extra: dict[str, Any]
    created_at: datetime
    download_url: str
    sha256: str | None = Field(
        default=None,
        description="hex SHA-256 of the model file; null for a variant stored before digests were kept and not read since",
    )
    damaged: str | None = Field(
        default=None, description="why the file is no longer served (its SHA-256 no longer matches); null when whole"
    )

    @classmethod
    def of(cls, v: VariantRecord) -> VariantPublic:
        data = {k: getattr(v, k) for k in cls.model_fields if hasattr(v, k)}
        for k in ("accuracy", "precision", "recall", "f1"):
            if data[k] is not None and not math.isfinite(data[k]):
                data[k] = None
        data["download_url"] = f"/api/variants/{v.id}/download"
        return cls(**data)


class VariantsPublic(BaseModel):
    data: list[VariantPublic]
    count: int


class SeriesPublic(BaseModel):
    steps: list[int]
    values: list[Number]


class MetricsPublic(BaseModel):
    run_id: int
    status: str
    last_step: int
    series: dict[str, SeriesPublic]
    more_keys: bool = Field(
        default=False,
        description="the request named no keys and the run has more than the default set returned (list them with GET /api/runs/{id}/metrics/keys)",
    )


class MetricKeysPublic(BaseModel):
    run_id: int
    keys: list[str] = Field(description="the run's metric keys, sorted, after the `after` cursor")
    count: int = Field(description="how many keys this page holds")
    next_after: str | None = Field(description="pass as `after` for the next page; null on the last")
    default_keys: list[str] = Field(
        description="what GET …/metrics returns without `keys`: loss, val_loss, accuracy, val_accuracy when present, then the others in order"
    )
    max_keys_per_run: int = Field(description="OPTIBOARD_MAX_METRIC_KEYS_PER_RUN: a batch that would pass it gets 422")
    max_keys_per_read: int = Field(description="most keys one GET …/metrics returns or accepts in `keys`")


# The ingestion body is a TypedDict, not a model: a batch holds thousands of points, and
# validating into plain dicts costs about half as much as building a model per point.
class PointIn(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    key: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-/ ]+$")]
    step: Annotated[int, Field(ge=0, le=MAX_STEP)]
    value: Annotated[float | None, Field(description="null or a non-finite number is stored as NaN/±inf")]
    wall_time: NotRequired[Annotated[float | None, Field(ge=0, le=1e11)]]


class PointsIn(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    points: Annotated[list[PointIn], Field(min_length=1, max_length=50_000)]


class Accepted(BaseModel):
    """The answer to a metric batch. `accepted + duplicates` is the number of points sent."""

    accepted: int = Field(description="points stored by this batch: (key, step) pairs the run did not hold yet")
    duplicates: int = Field(
        description="points ignored because the run already held their (key, step), "
        "or the batch repeated it (first write wins)"
    )
    replayed: bool = Field(
        default=False,
        description="true when the Idempotency-Key was seen before on this "
        "run: nothing was written and the first answer is repeated",
    )


class ExperimentIn(In):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)


class ExperimentPublic(BaseModel):
    id: int
    name: str
    description: str
    created_at: datetime
    run_count: int


class ExperimentsPublic(BaseModel):
    data: list[ExperimentPublic]
    count: int


class DatasetPublic(BaseModel):
    id: int
    name: str
    size_bytes: int = Field(description="bytes of the .npz file as uploaded")
    info: dict[str, Any] = Field(
        description=(
            "what validation found: train_examples, test_examples, input_shape (per example), x_dtype, y_dtype, "
            "classes (K), train_class_counts and test_class_counts (examples per class, K each), bytes (expanded "
            "size of the four arrays); label_values (the label of each class, when a `classes` array mapped them), "
            "class_names, ignored_arrays when present"
        )
    )
    created_at: datetime


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


class ModelPublic(BaseModel):
    id: int
    name: str
    original_filename: str = Field(
        description="the file name the client sent (the stored file has a server-chosen name)"
    )
    sha256: str = Field(description="hex SHA-256 of the stored bytes")
    size_bytes: int = Field(description="bytes of the file as uploaded")
    format: str = Field(description="keras, saved_model or tflite")
    keras_flavour: str | None = Field(description="keras3 or tf_keras: which library wrote (and loads) a .keras file")
    status: str = Field(description="ready, or measurement_only for a .tflite file")
    preflight: dict[str, Any] = Field(
        description=(
            "what the sandboxed check found: kind (sequential, functional, saved_model, tflite), inputs and "
            "outputs (shape with null for the batch, dtype; outputs also activation and kind: logits or "
            "probabilities), params, nested_models (path, class, layers), layers (per layer: path, class, params, "
            "and for prune, qat, cluster and int8 a {status: yes|fix|no, note}), techniques (per technique "
            "{status, reason}), seconds (time the check took)"
        )
    )
    created_at: datetime


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int


class LogsPublic(BaseModel):
    lines: list[str]


class FinishRequest(In):
    status: Literal["succeeded", "failed", "cancelled"]
    error: str | None = Field(default=None, max_length=10_000)


class MeasurementRequest(In):
    device: str = Field(
        pattern=DEVICE_LABEL_PATTERN,
        description="the label of an online device worker (`optiboard worker --device rpi4`), e.g. rpi4",
    )


class MeasurementPublic(BaseModel):
    """A variant measured (or to be measured) on a device; latencies in ms at batch 1."""

    id: int
    variant_id: int
    run_id: int
    format: str
    device: str
    status: Literal["queued", "running", "succeeded", "failed"]
    worker: str | None = Field(description="the Celery node that took the job")
    fingerprint: dict[str, Any] = Field(description="hardware and library versions of the process that measured")
    error: str | None = Field(description="why it failed; null otherwise")
    figures: dict[str, Any] = Field(
        description="latency_p50/p90/p95/p99/mean/std/min_ms, latency_count, latency_cv, latency_unstable, "
        "latency_threads, init_ms, first_inference_ms, load_avg_1m, peak_memory_bytes, mcu_ram_bytes, "
        "mcu_flash_bytes; null where not measured"
    )
    created_at: datetime
    started_at: datetime | None
    measured_at: datetime | None

    @classmethod
    def of(cls, r: MeasurementRecord) -> MeasurementPublic:
        return cls.model_validate({k: getattr(r, k) for k in cls.model_fields})


class MeasurementsPublic(BaseModel):
    data: list[MeasurementPublic]
    count: int


class DevicePublic(BaseModel):
    device: str
    workers: list[str] = Field(description="online workers with this label")
    hardware: dict[str, Any] = Field(description="the first worker's hardware description")


class DevicesPublic(BaseModel):
    data: list[DevicePublic]
    count: int
