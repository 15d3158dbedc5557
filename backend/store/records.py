"""Plain records the store hands out: the boundary between ORM rows and everything else."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backend.store import models as m
from runspec.vocabulary import TERMINAL_STATUSES, VARIANT_PROTOCOL_FIELDS


@dataclass(frozen=True)
class ExperimentRecord:
    """A named group of runs; `run_count` is how many runs it holds."""

    id: int
    name: str
    description: str
    created_at: datetime
    run_count: int = 0


@dataclass(frozen=True)
class RunRecord:
    """One run as the API and the worker see it. Times are timezone-aware UTC datetimes;
    `progress` is 0.0–1.0; `eta_seconds`, `train_seconds` are seconds; `peak_memory_bytes` bytes;
    `status` one of runspec.vocabulary.RUN_STATUSES; `spec` the validated RunSpec as JSON data;
    `headline` the headline variant's {format, accuracy, size_bytes, latency_p50_ms} or None;
    `study_id`/`trial_number` the study this run is a trial of and its number (0-based), or None.
    """

    id: int
    experiment_id: int
    experiment: str
    name: str
    kind: str
    external: bool
    status: str
    spec: dict[str, Any]
    spec_hash: str
    summary: str
    parent_run_id: int | None
    retry_of_run_id: int | None
    control_of_run_id: int | None  # the run this one is the same-budget control of
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
    lease: str | None = None
    headline: dict[str, Any] | None = None
    control_run_id: int | None = None  # this run's same-budget control (the reverse of control_of_run_id)
    # The seed group (runspec.groups.group_key) and how many runs share it, this one included.
    group_key: str = ""
    group_size: int = 1
    study_id: int | None = None
    trial_number: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class VariantRecord:
    """One produced, measured model. `accuracy`, `precision`, `recall`, `f1` are 0.0–1.0 (macro over
    classes) on the test split; `confusion` is a K×K list of counts (rows true, columns predicted);
    `size_bytes`/`gzip_bytes` the artifact's bytes raw and gzip-compressed; `params`/`nonzero_params`
    weight counts; latencies are milliseconds at batch 1; `throughput_per_s` examples per second.
    """

    id: int
    run_id: int
    format: str
    artifact_path: str
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    confusion: list[list[int]]
    size_bytes: int
    gzip_bytes: int
    params: int
    nonzero_params: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    throughput_per_s: float | None
    hardware: dict[str, Any]
    extra: dict[str, Any]
    created_at: datetime
    # The latency protocol (issue 18); None for variants measured before it or not measured.
    latency_p90_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_mean_ms: float | None = None
    latency_std_ms: float | None = None
    latency_min_ms: float | None = None
    latency_count: int | None = None
    latency_cv: float | None = None
    latency_unstable: bool | None = None
    latency_threads: int | None = None
    init_ms: float | None = None
    first_inference_ms: float | None = None
    load_avg_1m: float | None = None
    peak_memory_bytes: int | None = None
    mcu_ram_bytes: int | None = None
    mcu_flash_bytes: int | None = None
    sha256: str | None = None  # hex digest of the stored file; None: stored before migration 0005, not read since
    damaged: str | None = None  # why the file is no longer served (a digest mismatch or a missing file)

    @property
    def sparsity(self) -> float | None:
        return 1.0 - self.nonzero_params / self.params if self.params else None


# The figures a device measurement holds (backend.store.models.VariantMeasurement): the latency
# protocol's in milliseconds at batch 1, counts, the stability guard, start-up and memory in bytes.
MEASUREMENT_FIGURES: tuple[str, ...] = ("latency_p50_ms", "latency_p95_ms", *VARIANT_PROTOCOL_FIELDS)


@dataclass(frozen=True)
class MeasurementRecord:
    """A variant measured on a device: `device` the label asked for, `status` one of
    runspec.vocabulary.MEASUREMENT_STATUSES, `worker` the Celery node that took it,
    `fingerprint` the hardware description of the process that measured (worker.engine.hardware
    `fingerprint()` plus `device` and `threads`), `figures` {name: value} over
    MEASUREMENT_FIGURES (None where not measured), `error` why it failed. Times are UTC.
    `run_id` and `format` are the variant's."""

    id: int
    variant_id: int
    run_id: int
    format: str
    device: str
    status: str
    worker: str | None
    fingerprint: dict[str, Any]
    error: str | None
    figures: dict[str, Any]
    extra: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    measured_at: datetime | None


def measurement_record(row: m.VariantMeasurement, *, run_id: int, fmt: str) -> MeasurementRecord:
    """The plain record of an ORM measurement row (with its variant's run id and format)."""
    return MeasurementRecord(
        id=row.id,
        variant_id=row.variant_id,
        run_id=run_id,
        format=fmt,
        device=row.device,
        status=row.status,
        worker=row.worker,
        fingerprint=dict(row.fingerprint or {}),
        error=row.error,
        figures={k: getattr(row, k) for k in MEASUREMENT_FIGURES},
        extra=dict(row.extra or {}),
        created_at=row.created_at,
        started_at=row.started_at,
        measured_at=row.measured_at,
    )


@dataclass(frozen=True)
class ModelRecord:
    """An uploaded model: `filename` relative to the artifact root (server-chosen), `sha256` hex
    of the stored bytes, `size_bytes` on disk, `format` one of runspec.modelfile.MODEL_FORMATS,
    `keras_flavour` "keras3" / "tf_keras" (None for SavedModel and TFLite), `status` one of
    runspec.vocabulary.MODEL_STATUSES, `preflight` what the sandboxed check found."""

    id: int
    name: str
    original_filename: str
    filename: str
    sha256: str
    size_bytes: int
    format: str
    keras_flavour: str | None
    status: str
    preflight: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class DatasetRecord:
    """An uploaded .npz: `size_bytes` of the file as stored; `info` what the validator found
    (shapes, dtypes, classes, counts per split).
    """

    id: int
    name: str
    filename: str
    size_bytes: int
    info: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class TokenRecord:
    """An API token's public face (never the secret): `prefix` its first 10 characters."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass
class Series:
    """One metric series: `steps` (int64, ascending) and `values` (float64, NaN kept), equal length."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def run_record(
    row: m.Run,
    experiment_name: str,
    headline: dict[str, Any] | None = None,
    group_size: int = 1,
    control_run_id: int | None = None,
) -> RunRecord:
    """The plain record of an ORM run row (and its experiment's name, optional headline, the
    number of runs in its seed group, the id of its control run)."""
    return RunRecord(
        id=row.id,
        experiment_id=row.experiment_id,
        experiment=experiment_name,
        name=row.name,
        kind=row.kind,
        external=row.external,
        status=row.status,
        spec=row.spec,
        spec_hash=row.spec_hash,
        summary=row.summary,
        parent_run_id=row.parent_run_id,
        retry_of_run_id=row.retry_of_run_id,
        control_of_run_id=row.control_of_run_id,
        attempt=row.attempt,
        max_attempts=row.max_attempts,
        worker=row.worker,
        cancel_requested=row.cancel_requested,
        progress=row.progress,
        eta_seconds=row.eta_seconds,
        error=row.error,
        log_tail=list(row.log_tail or []),
        tags=list(row.tags or []),
        notes=row.notes,
        hardware=dict(row.hardware or {}),
        train_seconds=row.train_seconds,
        peak_memory_bytes=row.peak_memory_bytes,
        final_metrics=row.final_metrics,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
        lease=row.lease,
        headline=headline,
        control_run_id=control_run_id,
        group_key=row.group_key,
        group_size=group_size,
        study_id=row.study_id,
        trial_number=row.trial_number,
    )


def variant_record(row: m.Variant) -> VariantRecord:
    """The plain record of an ORM variant row."""
    return VariantRecord(
        id=row.id,
        run_id=row.run_id,
        format=row.format,
        artifact_path=row.artifact_path,
        accuracy=row.accuracy,
        precision=row.precision,
        recall=row.recall,
        f1=row.f1,
        confusion=list(row.confusion or []),
        size_bytes=row.size_bytes,
        gzip_bytes=row.gzip_bytes,
        params=row.params,
        nonzero_params=row.nonzero_params,
        latency_p50_ms=row.latency_p50_ms,
        latency_p95_ms=row.latency_p95_ms,
        throughput_per_s=row.throughput_per_s,
        hardware=dict(row.hardware or {}),
        extra=dict(row.extra or {}),
        created_at=row.created_at,
        sha256=row.sha256,
        damaged=row.damaged,
        **{k: getattr(row, k) for k in VARIANT_PROTOCOL_FIELDS},
    )
