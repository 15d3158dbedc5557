"""ORM tables (SQLAlchemy 2.0, typed). API schemas live elsewhere: tables are not the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what every timestamp column stores)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware on the way out on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base with the constraint naming convention (stable names for migrations)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Experiment(Base):
    """A named group of runs (unique name)."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    runs: Mapped[list[Run]] = relationship(back_populates="experiment", lazy="raise")


class Run(Base):
    """One queued job or external run: its spec (JSON), status, attempt and lease, progress and
    times (UTC), log tail, hardware and resource figures.
    """

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_status_heartbeat", "status", "heartbeat_at"),
        Index("ix_runs_experiment_created", "experiment_id", "created_at"),
        UniqueConstraint("study_id", "trial_number", name="uq_runs_study_id_trial_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="train")
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    # The seed group (runspec.groups.group_key: the spec's hash without its seeds and labels);
    # runs that share it are repeats of one recipe. Migration 0011.
    group_key: Mapped[str] = mapped_column(String(64), index=True)
    summary: Mapped[str] = mapped_column(String(300), default="")
    parent_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    # The failed or cancelled run this one retries (POST /api/runs/{id}/retry); migration 0007.
    retry_of_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    # The run this one is the same-budget control of (RunSpec.control, runspec.controls); migration 0014.
    control_of_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=2)
    lease: Mapped[str | None] = mapped_column(String(64))
    worker: Mapped[str | None] = mapped_column(String(200))
    task_id: Mapped[str | None] = mapped_column(String(64))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    log_tail: Mapped[list[Any]] = mapped_column(JSON, default=list)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    hardware: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    train_seconds: Mapped[float | None] = mapped_column(Float)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # The last value of each logged key when the run ended ({key: value}, NaN as None): the run
    # summary. Written by backend.store.runs.finish_run; migration 0007.
    final_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    # The study this run is a trial of, and its trial number there (unique per study); migration 0013.
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="SET NULL"))
    trial_number: Mapped[int | None] = mapped_column(Integer)

    experiment: Mapped[Experiment] = relationship(back_populates="runs", lazy="raise")


class Study(Base):
    """A goal-driven search (issue 20): its spec (runspec.studies.StudySpec as JSON, with the
    objectives, constraint, search space and budget also kept apart for reading), the baseline's
    reference figures, its status (runspec.vocabulary.STUDY_STATUSES) and budget extensions. The
    trials are ordinary runs (runs.study_id) with a StudyTrial row each."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    experiment: Mapped[str] = mapped_column(String(200))
    # No foreign key: runs.study_id points here, and a cycle of keys would need ALTERs to create.
    baseline_run_id: Mapped[int] = mapped_column(Integer)
    dataset: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    objectives: Mapped[list[Any]] = mapped_column(JSON, default=list)
    constraint: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    search_space: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    budget: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    strategy: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(Integer, default=0)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The baseline's variant figures the constraint and hypervolume refer to ({format, accuracy, f1, ...}).
    reference: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    stop_reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class StudyTrial(Base):
    """One trial of a study: the sampled recipe (Optuna parameter name → value), its run, and
    what the study was told: `state` (runspec.studies.TRIAL_STATES), the objective `values` in
    the study's objective order, the constraint value (bar − metric; ≤ 0 is feasible), why it was
    pruned, the worker seconds its run took, and the sampler's own attributes. Rebuilding the sampler reads only these rows."""

    __tablename__ = "study_trials"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), unique=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # What the sampler kept on the trial (Optuna system attributes, e.g. NSGA-II's generation).
    sampler_attrs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="running")
    values: Mapped[list[Any] | None] = mapped_column(JSON)
    constraint_value: Mapped[float | None] = mapped_column(Float)
    pruned_reason: Mapped[str | None] = mapped_column(Text)
    worker_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    told_at: Mapped[datetime | None] = mapped_column()


class MetricPoint(Base):
    """One value of one metric at one step. NaN is stored as NULL (SQLite cannot hold NaN)."""

    __tablename__ = "metric_points"
    # One B-tree per point (migration 0004): SQLite stores rows in key order (WITHOUT ROWID).
    __table_args__ = {"sqlite_with_rowid": False}

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    value: Mapped[float | None] = mapped_column(Float)
    wall_time: Mapped[float] = mapped_column(Float)


class MetricBlock(Base):
    """A summary of `level` consecutive steps of one series (block = step // level): count and
    the first, last, minimum and maximum points. Maintained by backend.store.metrics.log_batch so
    a compare page can downsample millions of points by reading thousands of blocks. NULL
    values are NaN, ordered below every number for the minimum (so NaN spikes stay visible)."""

    __tablename__ = "metric_blocks"
    __table_args__ = {"sqlite_with_rowid": False}  # clustered by (run, key, level, block)

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    block: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    first_step: Mapped[int] = mapped_column(BigInteger)
    first_value: Mapped[float | None] = mapped_column(Float)
    last_step: Mapped[int] = mapped_column(BigInteger)
    last_value: Mapped[float | None] = mapped_column(Float)
    min_step: Mapped[int] = mapped_column(BigInteger)
    min_value: Mapped[float | None] = mapped_column(Float)
    max_step: Mapped[int] = mapped_column(BigInteger)
    max_value: Mapped[float | None] = mapped_column(Float)


class MetricDigest(Base):
    """A finished run's series as a compare read returns it at one block level: the points of
    its `level`-step blocks (first, minimum, maximum and last of each, in step order), packed as
    little-endian int64 steps then float64 values. Built when the run ends
    (backend.store.metrics.digests); a read uses it only while `n`, `first_step` and `last_step`
    still match the series, else it reads the blocks."""

    __tablename__ = "metric_digests"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    first_step: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class MetricBatch(Base):
    """A metric batch an external script sent with an `Idempotency-Key` header, remembered per
    run with the counts it was answered with: a resend of the same batch (its reply was lost)
    is answered the same way and stores nothing twice. Deleted with its run."""

    __tablename__ = "metric_batches"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    batch_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    accepted: Mapped[int] = mapped_column(Integer)
    duplicates: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MeasuredFigures:
    """The figures of the one measurement harness (runspec.vocabulary VARIANT_PROTOCOL_FIELDS plus
    p50/p95; worker.engine.latency and worker.engine.footprint say how each is measured): latency
    in milliseconds at batch 1 and `latency_threads` threads, memory in bytes; None where not
    measured. A variant holds them as the training worker measured it (migrations 0001, 0009), a
    variant measurement as a device measured it (0010)."""

    latency_p50_ms: Mapped[float | None] = mapped_column(Float)
    latency_p95_ms: Mapped[float | None] = mapped_column(Float)
    latency_p90_ms: Mapped[float | None] = mapped_column(Float)
    latency_p99_ms: Mapped[float | None] = mapped_column(Float)
    latency_mean_ms: Mapped[float | None] = mapped_column(Float)
    latency_std_ms: Mapped[float | None] = mapped_column(Float)
    latency_min_ms: Mapped[float | None] = mapped_column(Float)
    latency_count: Mapped[int | None] = mapped_column(Integer)
    latency_cv: Mapped[float | None] = mapped_column(Float)
    latency_unstable: Mapped[bool | None] = mapped_column(Boolean)
    latency_threads: Mapped[int | None] = mapped_column(Integer)
    init_ms: Mapped[float | None] = mapped_column(Float)
    first_inference_ms: Mapped[float | None] = mapped_column(Float)
    load_avg_1m: Mapped[float | None] = mapped_column(Float)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mcu_ram_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mcu_flash_bytes: Mapped[int | None] = mapped_column(BigInteger)


class Variant(MeasuredFigures, Base):
    """One produced model of a run (unique per run and format) with its measurements and the
    SHA-256 of its artifact file.
    """

    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("run_id", "format"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(32))
    artifact_path: Mapped[str] = mapped_column(String(500))
    accuracy: Mapped[float | None] = mapped_column(Float)
    precision: Mapped[float | None] = mapped_column(Float)
    recall: Mapped[float | None] = mapped_column(Float)
    f1: Mapped[float | None] = mapped_column(Float)
    confusion: Mapped[list[Any]] = mapped_column(JSON, default=list)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    gzip_bytes: Mapped[int] = mapped_column(BigInteger)
    params: Mapped[int] = mapped_column(BigInteger)
    nonzero_params: Mapped[int] = mapped_column(BigInteger)
    throughput_per_s: Mapped[float | None] = mapped_column(Float)
    hardware: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # SHA-256 (hex) of the file as the worker stored it; NULL for variants stored before
    # migration 0005 until their file is first read (see backend.store.variants.verified_file).
    sha256: Mapped[str | None] = mapped_column(String(64))
    # Why the file can no longer be trusted (set when a read found it changed or missing).
    damaged: Mapped[str | None] = mapped_column(String(500))


class VariantMeasurement(MeasuredFigures, Base):
    """A variant measured on a target device (issue 18 item 4): which device label it was asked
    for, its life (runspec.vocabulary.MEASUREMENT_STATUSES), the worker that took it and the
    hardware fingerprint it measured on, the latency protocol's figures (milliseconds, batch 1)
    and memory (bytes), or why it failed. One row per request: measuring again adds a row.
    """

    __tablename__ = "variant_measurements"
    __table_args__ = (Index("ix_variant_measurements_variant_id_device", "variant_id", "device"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    device: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    worker: Mapped[str | None] = mapped_column(String(200))
    fingerprint: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    measured_at: Mapped[datetime | None] = mapped_column()


class Dataset(Base):
    """An uploaded .npz under a server-chosen file name, with what the validator found."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(100), unique=True)  # server-chosen
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Model(Base):
    """An uploaded model file (issue 17) under a server-chosen name below the artifact root, with
    its SHA-256, what the static scan found (format, Keras flavour) and the sandboxed preflight."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    original_filename: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(100), unique=True)  # server-chosen, relative to the artifact root
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(16))
    keras_flavour: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    preflight: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token: only its SHA-256 and first characters are stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
