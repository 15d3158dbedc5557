"""Shared fixtures of the engine tests: a recording Reporter and small digits specs."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

from runspec.spec import RunSpec  # noqa: E402
from worker.engine.contract import VariantResult  # noqa: E402


class RecordingReporter:
    """The engine's collaborator kept in memory: records everything, can ask to stop."""

    def __init__(self, stop_after_points: int | None = None):
        self.points: list[tuple[str, int, float]] = []
        self.variants: list[VariantResult] = []
        self.lines: list[str] = []
        self.progress_calls: list[tuple[float, float | None]] = []
        self.stop_after_points = stop_after_points

    def log_metrics(self, points: list[tuple[str, int, float]]) -> None:
        self.points.extend(points)

    def progress(self, fraction: float, eta_seconds: float | None = None) -> None:
        self.progress_calls.append((fraction, eta_seconds))

    def should_stop(self) -> bool:
        return self.stop_after_points is not None and len(self.points) >= self.stop_after_points

    def add_variant(self, variant: VariantResult) -> None:
        self.variants.append(variant)

    def log(self, message: str) -> None:
        self.lines.append(message)

    # helpers for assertions
    def series(self, key: str) -> list[tuple[int, float]]:
        return [(s, v) for k, s, v in self.points if k == key]

    def variant(self, fmt: str) -> VariantResult:
        found = [v for v in self.variants if v.format == fmt]
        assert found, f"no {fmt} variant among {[v.format for v in self.variants]}"
        return found[0]

    def nan_points(self) -> list[tuple[str, int, float]]:
        return [p for p in self.points if not math.isfinite(p[2])]


def make_digits_spec(**overrides: Any) -> RunSpec:
    """A quick digits recipe; nested dicts override the defaults."""
    base: dict[str, Any] = {
        "dataset": {"name": "digits"},
        "training": {"epochs": 3, "log_every_n_batches": 5},
        "measurement": {"protocol": "quick", "latency_runs": 10, "warmup_runs": 2, "throughput_batch": 8},
        "export_options": {"representative_samples": 50},
        "exports": [],
    }
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return RunSpec.model_validate(base)


class ModelStore:
    """Finished runs' Keras models by run id, as the adapter's resolver would find them."""

    def __init__(self) -> None:
        self.paths: dict[int, Path] = {}

    def __call__(self, run_id: int) -> Path:
        if run_id not in self.paths:
            raise LookupError(f"run {run_id} has no stored model")
        return self.paths[run_id]


def no_upload(upload_id: int) -> Path:
    raise LookupError(f"no upload {upload_id}")


@pytest.fixture(scope="session")
def digits_spec():
    """Builder of quick digits specs: digits_spec(training={...}, techniques=[...])."""
    return make_digits_spec


@pytest.fixture(scope="session")
def make_reporter():
    return RecordingReporter


@pytest.fixture(scope="session")
def model_store():
    return ModelStore


@pytest.fixture(scope="session")
def run():
    """Call run_job the way the worker does; returns (summary, reporter)."""
    from worker.engine.job import run_job

    def _run(
        spec: RunSpec,
        workdir: Path,
        *,
        reporter: RecordingReporter | None = None,
        models: ModelStore | None = None,
        upload=no_upload,
    ):
        rep = reporter or RecordingReporter()
        summary = run_job(spec, rep, workdir=workdir, resolve_model=models or ModelStore(), resolve_upload=upload)
        return summary, rep

    return _run


@pytest.fixture(scope="session")
def teacher(tmp_path_factory, run) -> tuple[ModelStore, RecordingReporter, Any]:
    """One trained seed CNN on digits, stored as run 1 (teacher and optimize parent)."""
    workdir = tmp_path_factory.mktemp("teacher")
    # the default recipe (issue 2: ≥ 0.9 on digits) with its default export
    summary, rep = run(RunSpec.model_validate({"dataset": {"name": "digits"}}), workdir)
    store = ModelStore()
    store.paths[1] = rep.variant("keras").path
    return store, rep, summary
