"""What the engine needs from whoever runs it, and what it hands back.

The engine (TensorFlow side) knows nothing of Celery or the database: the job adapter passes a
`Reporter` and two resolvers, and receives `VariantResult`s through the reporter and a
`JobSummary` at the end. Plain dataclasses and a Protocol, importable without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Cancelled(Exception):
    """Raised inside the engine when the reporter says the run was cancelled."""


@dataclass(frozen=True)
class VariantResult:
    """One produced model, measured by the one harness (worker.engine.measure)."""

    format: str  # keras | tflite-float32 | tflite-dynamic | tflite-float16 | tflite-int8
    path: Path  # file inside the job's work directory; the adapter moves it to the artifact root
    accuracy: float
    precision: float  # macro
    recall: float  # macro
    f1: float  # macro
    confusion: list[list[int]]
    size_bytes: int
    gzip_bytes: int
    params: int
    nonzero_params: int
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    throughput_per_s: float | None = None
    hardware: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. sparsity, clusters, int8 tensor count


@dataclass(frozen=True)
class JobSummary:
    epochs_done: int = 0
    train_seconds: float = 0.0
    peak_memory_bytes: int = 0
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Reporter(Protocol):
    """Where the engine sends progress. Metric points are (key, step, value); step is the
    global training batch. Implementations batch and persist them."""

    def log_metrics(self, points: list[tuple[str, int, float]]) -> None: ...

    def progress(self, fraction: float, eta_seconds: float | None = None) -> None:
        """Also serves as the heartbeat; called at least every few seconds while working."""

    def should_stop(self) -> bool:
        """True once the run was cancelled: the engine raises Cancelled at the next batch."""

    def add_variant(self, variant: VariantResult) -> None: ...

    def log(self, message: str) -> None:
        """One line for the run's log tail shown to the user."""


# Given a finished run's id, the path of its stored Keras model (teacher, optimize parent).
ModelResolver = Callable[[int], Path]
# Given an uploaded dataset's id, the path of its .npz under the data directory.
UploadResolver = Callable[[int], Path]


class TrainingDiverged(RuntimeError):
    """Raised when the training loss stops being finite; the NaN/inf points are logged first."""
