"""What the engine needs from whoever runs it, and what it hands back.

The engine (TensorFlow side) knows nothing of Celery or the database: the job adapter passes a
`Reporter` and two resolvers to `worker.engine.job.run_job`, and receives `VariantResult`s
through the reporter and a `JobSummary` at the end. Plain dataclasses and a Protocol,
importable without TensorFlow.

Besides what the resolvers raise, `run_job` raises `Cancelled` (the reporter asked to stop),
`TrainingDiverged` (the loss stopped being finite), ValueError for data or models the spec
cannot run on (an invalid uploaded .npz, a non-`.keras` model file, a model of another input
shape or class count, an image architecture on flat inputs), RuntimeError for a built-in
dataset missing from the Keras cache, `UnknownTechnique` (a LookupError, from
worker.engine.techniques.registry) for a technique spec no technique is registered for, and
what TensorFlow raises. The adapter turns every one of them into a terminal run state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Cancelled(Exception):
    """Raised inside the engine when the reporter says the run was cancelled (checked after
    every training batch); the points of the batches run so far are reported first."""


@dataclass(frozen=True)
class VariantResult:
    """One produced model, measured by the one harness (worker.engine.measure) on the test split.

    Quality: `accuracy` is the fraction of test examples whose argmax logit is the label;
    `precision`, `recall`, `f1` are macro means over all classes (a class never predicted or
    absent counts 0); `confusion[i][j]` counts examples of label i predicted as j (classes ×
    classes ints). Size: `size_bytes` of the file as written, `gzip_bytes` after gzip -9.
    `params` counts every weight (for TFLite, of the Keras model converted), `nonzero_params`
    those not exactly 0. Speed: `latency_p50_ms`/`latency_p95_ms` are percentiles of batch-1
    inference wall time in milliseconds after warm-up, `throughput_per_s` examples per second
    at `measurement.throughput_batch` (median call); None where not measured. `hardware` is
    worker.engine.hardware.fingerprint() plus "threads" (1 for TFLite).
    """

    format: str  # keras | tflite-float32 | tflite-dynamic | tflite-float16 | tflite-int8
    path: Path  # file inside the job's work directory; the adapter moves it to the artifact root
    accuracy: float  # in [0, 1]
    precision: float  # macro, in [0, 1]
    recall: float  # macro, in [0, 1]
    f1: float  # macro, in [0, 1]
    confusion: list[list[int]]
    size_bytes: int
    gzip_bytes: int
    params: int
    nonzero_params: int
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    throughput_per_s: float | None = None
    # The latency protocol (worker.engine.latency): batch 1, `latency_threads` threads (1).
    latency_p90_ms: float | None = None  # the headline figure (MLPerf single-stream)
    latency_p99_ms: float | None = None
    latency_mean_ms: float | None = None
    latency_std_ms: float | None = None  # population standard deviation of the timed runs
    latency_min_ms: float | None = None
    latency_count: int | None = None  # timed runs behind the figures
    latency_cv: float | None = None  # std / mean
    latency_unstable: bool | None = None  # spread above the guard after one re-measurement
    latency_threads: int | None = None
    init_ms: float | None = None  # interpreter construction + allocate_tensors
    first_inference_ms: float | None = None  # the first invoke after allocation
    load_avg_1m: float | None = None  # os.getloadavg()[0] at the end of the timed runs
    # Memory (worker.engine.footprint): peak RSS growth of a fresh process loading and running it.
    peak_memory_bytes: int | None = None
    mcu_ram_bytes: int | None = None  # int8 only: peak of simultaneously live activation bytes
    mcu_flash_bytes: int | None = None  # int8 only: the .tflite file's bytes
    hardware: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. sparsity, clusters, int8 tensor count


@dataclass(frozen=True)
class JobSummary:
    """What a finished job reports besides its variants.

    `epochs_done` counts every epoch run (base training and each fine-tuning phase);
    `train_seconds` is wall time inside Keras fit calls, in seconds; `peak_memory_bytes` the
    process's lifetime peak resident set size (ru_maxrss) in bytes, which in a warm worker may be
    an earlier job's (the worker stores the job's own peak instead, worker.system_metrics); `stopped_early` whether early
    stopping ended the base training. `extra` holds "steps" (optimizer steps over all phases),
    "recipe", "precision" (the Keras policy of the base training) and "wall_seconds".
    """

    epochs_done: int = 0
    train_seconds: float = 0.0
    peak_memory_bytes: int = 0
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Reporter(Protocol):
    """Where the engine sends progress. Implementations batch and persist what they receive;
    none of the methods may block for long (they are called from the training loop)."""

    def log_metrics(self, points: list[tuple[str, int, float]]) -> None:
        """Metric points as (key, step, value): `step` is the global training batch (an int
        counting on across phases), `value` a Python float that may be NaN or ±inf."""

    def progress(self, fraction: float, eta_seconds: float | None = None) -> None:
        """`fraction` of the whole job done, in [0, 1]; `eta_seconds` the estimated seconds
        left, or None when unknown. Also serves as the heartbeat: called at least every few
        seconds while training."""

    def should_stop(self) -> bool:
        """True once the run was cancelled: the engine raises Cancelled at the next batch."""

    def add_variant(self, variant: VariantResult) -> None:
        """A produced and measured model; its file stays in the work directory until the
        adapter takes it."""

    def log(self, message: str) -> None:
        """One line for the run's log tail shown to the user."""


# Given a finished run's id, the path of its stored Keras model (teacher, optimize parent,
# initial model). Raises LookupError or ValueError when the run has no stored model.
ModelResolver = Callable[[int], Path]
# Given a finished run's id and an epoch, the path of the Keras model that run kept after that
# epoch (training.checkpoint_every_epochs). Raises LookupError or ValueError when there is none.
CheckpointResolver = Callable[[int, int], Path]


def no_checkpoints(run_id: int, epoch: int) -> Path:
    """The CheckpointResolver of a runner that keeps no checkpoints: always raises LookupError."""
    raise LookupError(f"no checkpoint of run {run_id} at epoch {epoch} is available here")


@dataclass(frozen=True)
class UploadedModel:
    """An uploaded model as a job reads it (POST /api/models): `format` is keras, saved_model or
    tflite; `path` is the file to load (for a Keras 3 upload, its tf-keras copy made at upload
    time; checked against its SHA-256), `size_bytes` the uploaded file's size, `preflight` the
    stored compatibility preflight (worker.engine.preflight)."""

    id: int
    name: str
    format: str
    path: Path
    size_bytes: int
    preflight: dict[str, Any] = field(default_factory=dict)


# Given an uploaded model's id, what the job needs of it. Raises LookupError or ValueError when
# there is no such model or its file is missing or damaged.
UploadedModelResolver = Callable[[int], UploadedModel]
# Given an uploaded dataset's id, the path of its .npz under the data directory. Raises
# LookupError or ValueError when there is no such upload or its file is missing.
UploadResolver = Callable[[int], Path]


class ExpectedFailure(RuntimeError):
    """A failure the user can fix, with a message that says how (a dataset that is not on this
    server, a loss that diverged): the run fails with the message, and the worker logs it in one
    line, without a traceback."""


class DatasetUnavailable(ExpectedFailure):
    """The spec names a dataset whose files this worker does not have."""


class WeightsUnavailable(DatasetUnavailable):
    """The spec asks for ImageNet weights whose file is not in this worker's Keras cache."""


class ModelFileRefused(ExpectedFailure, ValueError):
    """A model file that is not in the Keras v3 format (the only one loaded in safe mode)."""


class TrainingDiverged(ExpectedFailure):
    """Raised when the training loss stops being finite; the NaN/inf points are logged first."""
