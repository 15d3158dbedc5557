"""One job, top to bottom: data → model → technique chain → Keras variant → TFLite exports.

`run_job` is what the worker's Celery task calls. Every produced model is written in
`workdir`, measured by the one harness and handed to `reporter.add_variant`.
"""

from __future__ import annotations

import resource
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from runspec.npz import DEFAULT_MAX_DATASET_BYTES
from runspec.spec import MAX_CHECKPOINTS, RunSpec, techniques_summary
from runspec.spec import Technique as TechniqueSpec
from worker.engine import tfsetup  # noqa: I001 - first: sets TF_USE_LEGACY_KERAS before TF loads
from worker.engine.callbacks import RunClock
from worker.engine.contract import (
    CheckpointResolver,
    ExpectedFailure,
    JobSummary,
    ModelResolver,
    Reporter,
    UploadedModel,
    UploadedModelResolver,
    UploadResolver,
    VariantResult,
    no_checkpoints,
)
from worker.engine.data import Data, load_data
from worker.engine.export import representative_samples, to_tflite
from worker.engine.measure import TestSet, measure_variant
from worker.engine.models import build_model, check_input, load_keras_model, save_keras_model
from worker.engine.optimizers import make_loss, make_optimizer, schedule_callbacks
from worker.engine.precision import FLOAT32, float32_copy, for_training
from worker.engine.techniques.base import Applied, PhaseContext, Technique
from worker.engine.techniques.registry import technique_for
from worker.engine.tfsetup import keras
from worker.engine.training import Arrays, fit_phase, steps_per_epoch
from worker.engine.uploaded import as_uploaded, extract_saved_model, fit_data, logits_model


def run_job(
    spec: RunSpec,
    reporter: Reporter,
    *,
    workdir: Path,
    resolve_model: ModelResolver,
    resolve_upload: UploadResolver,
    resolve_uploaded_model: UploadedModelResolver | None = None,
    resolve_checkpoint: CheckpointResolver = no_checkpoints,
    max_dataset_bytes: int = DEFAULT_MAX_DATASET_BYTES,
    max_dataset_ratio: float | None = 1000.0,
) -> JobSummary:
    keras.backend.clear_session()  # a warm worker process runs many jobs
    tfsetup.seed_everything(spec.training.seed)
    keras.mixed_precision.set_global_policy(FLOAT32)
    try:
        data = load_data(
            spec.dataset, resolve_upload, max_dataset_bytes=max_dataset_bytes, max_dataset_ratio=max_dataset_ratio
        )
        reporter.log(
            f"data: {spec.dataset.name}, {len(data.x_train)} train, "
            f"{0 if data.x_val is None else len(data.x_val)} validation, "
            f"{len(data.x_test)} test, input {data.input_shape}, {data.classes} classes"
        )
        untrained = sorted(set(range(data.classes)) - set(np.unique(data.y_train).tolist()))
        if untrained:  # a limit_train or the validation split took every example of these classes
            reporter.log(
                f"warning: classes {untrained[:20]} have no training example after "
                f"dataset.limit_train / validation_split; the model cannot learn them"
            )
        reporter.progress(0.0, None)  # heartbeat: loading a large set can take a while
        if spec.kind == "optimize":
            return _optimize(spec, data, reporter, workdir, resolve_model)
        if spec.model.upload_id is not None:
            if resolve_uploaded_model is None:
                raise ExpectedFailure("this worker cannot read uploaded models")
            uploaded = resolve_uploaded_model(spec.model.upload_id)
            if uploaded.format != "keras":
                return _uploaded_without_training(spec, uploaded, data, reporter, workdir, max_dataset_bytes)
            start, data = _uploaded_start(spec, uploaded, data, reporter, workdir)
            return _train(spec, data, reporter, workdir, resolve_model, resolve_checkpoint, start=start)
        return _train(spec, data, reporter, workdir, resolve_model, resolve_checkpoint)
    finally:
        keras.mixed_precision.set_global_policy(FLOAT32)


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


# --- train: plan → initial model → base training → technique chain → Keras variant → exports


class _Step(NamedTuple):
    """Entry number `phase` (from 1) of the spec's techniques, and the technique that runs it."""

    phase: int
    technique: Technique
    spec: TechniqueSpec


@dataclass(frozen=True)
class _TrainJob:
    """What every phase of one train job reads."""

    spec: RunSpec
    data: Data
    reporter: Reporter
    workdir: Path
    resolve_model: ModelResolver
    resolve_checkpoint: CheckpointResolver
    steps_per_epoch: int
    clock: RunClock  # one global step counter over every phase
    arrays: Arrays  # the job's own inputs and labels
    loss: Callable
    metrics: list

    def context(self, kept: frozenset[str]) -> PhaseContext:
        return PhaseContext(
            data=self.data,
            training=self.spec.training,
            steps_per_epoch=self.steps_per_epoch,
            kept=kept,
            reporter=self.reporter,
            resolve_model=self.resolve_model,
            resolve_checkpoint=self.resolve_checkpoint,
        )


def _train(
    spec: RunSpec,
    data: Data,
    reporter: Reporter,
    workdir: Path,
    resolve_model: ModelResolver,
    resolve_checkpoint: CheckpointResolver,
    *,
    start: keras.Model | None = None,
) -> JobSummary:
    job, steps = _plan(spec, data, reporter, workdir, resolve_model, resolve_checkpoint)
    model, policy = _initial_model(job, start)
    first = steps[0] if steps and steps[0].technique.replaces_training else None
    model = _base_training(job, model, first)
    model, int8_model = _technique_chain(job, model, policy, steps[1:] if first else steps)
    reporter.log(f"training done in {job.clock.train_seconds:.1f} s over {job.clock.epochs_done} epochs")
    test = TestSet(data.x_test, data.y_test, data.classes)
    model = _save_keras_variant(job, model, test)
    _export_all(spec, model, data, test, reporter, workdir, job.clock, qat_model=int8_model)
    reporter.progress(1.0, 0.0)
    return _train_summary(job, policy)


def _plan(
    spec: RunSpec,
    data: Data,
    reporter: Reporter,
    workdir: Path,
    resolve_model: ModelResolver,
    resolve_checkpoint: CheckpointResolver,
) -> tuple[_TrainJob, list[_Step]]:
    """Each technique looked up in the registry (before anything trains) and the step count
    the run's progress is measured against."""
    t = spec.training
    steps = [_Step(i, technique_for(s), s) for i, s in enumerate(spec.techniques, start=1)]
    for step in steps[1:]:
        if step.technique.replaces_training:  # the spec validator puts it first
            raise ValueError(f"technique {step.spec.name!r} cannot follow others")
    spe = steps_per_epoch(len(data.x_train), t.batch_size)
    tune_epochs = sum(step.technique.fine_tune_epochs(step.spec, spe) for step in steps)
    clock = RunClock(total_steps=spe * (t.epochs + tune_epochs))
    reporter.log(f"recipe: {techniques_summary(spec)}")
    arrays = Arrays(data.x_train, data.y_train, data.x_val, data.y_val)
    loss = make_loss(data.classes, t.regularization.label_smoothing, soft_labels=t.mixup_alpha > 0)
    job = _TrainJob(
        spec, data, reporter, workdir, resolve_model, resolve_checkpoint, spe, clock, arrays, loss, ["accuracy"]
    )
    return job, steps


def _initial_model(job: _TrainJob, start: keras.Model | None = None) -> tuple[keras.Model, str]:
    """A fresh model of the spec's architecture, a finished run's model or an uploaded model
    (`start`) to start from; cast to the training policy (mixed precision covers base training
    and distillation)."""
    spec, t = job.spec, job.spec.training
    if start is not None:
        model = start
        check_input(model, job.data, "the uploaded model")
    elif spec.model.init_from_run_id is not None:
        model = load_keras_model(job.resolve_model(spec.model.init_from_run_id), "the initial model")
        check_input(model, job.data, "the initial model")
        job.reporter.log(f"starting from run {spec.model.init_from_run_id}'s model")
    else:
        model = build_model(spec.model, job.data.input_shape, job.data.classes, t.regularization)
    if not t.epochs:
        return model, FLOAT32
    model, policy, note = for_training(model, t.pipeline.mixed_precision)
    if note:
        job.reporter.log(note)
    return model, policy


def _base_training(job: _TrainJob, model: keras.Model, first: _Step | None) -> keras.Model:
    """Phase 0: `training.epochs` of the run's optimizer, schedule and early stopping, on the
    job's labels, or on the problem of the technique that replaces base training (`first`)."""
    t, reporter, clock = job.spec.training, job.reporter, job.clock
    applied = Applied(base=model, model=model)
    if first is not None:
        applied = first.technique.apply(model, first.spec, job.context(frozenset()))
        _phase(reporter, clock, first.phase, first.technique.label(first.spec))
        for line in applied.notes:
            reporter.log(line)
    elif t.epochs:
        _phase(reporter, clock, 0, f"training {model.name} ({model.count_params()} parameters)")
    callbacks = schedule_callbacks(t.schedule, t.optimizer.learning_rate, t.epochs, job.steps_per_epoch)
    early = None
    if t.early_stopping and job.data.x_val is not None:
        early = keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=t.early_stopping.patience,
            min_delta=t.early_stopping.min_delta,
            restore_best_weights=True,
        )
        callbacks.append(early)
    if t.checkpoint_every_epochs:
        # the model being trained: a wrapper's inner model (distillation's student) once stripped
        strip = first.technique.strip if first is not None else (lambda a: a.model)
        callbacks.append(
            EpochCheckpoints(
                t.checkpoint_every_epochs, job.workdir / CHECKPOINT_DIR, lambda: strip(applied), job.reporter
            )
        )
    if t.epochs:
        _fit(job, applied, epochs=t.epochs, optimizer=make_optimizer(t.optimizer), callbacks=callbacks)
    if early is not None and early.stopped_epoch > 0:
        clock.stopped_early = True
        reporter.log(f"early stopping after epoch {early.stopped_epoch + 1}; best weights restored")
    return first.technique.strip(applied) if first is not None else model


CHECKPOINT_DIR = "checkpoints"  # in the job's workdir: epoch-<n>.keras, taken by the adapter


def checkpoint_name(epoch: int) -> str:
    """The file name of the checkpoint after `epoch` (1-based) in CHECKPOINT_DIR."""
    return f"epoch-{int(epoch)}.keras"


class EpochCheckpoints(keras.callbacks.Callback):
    """training.checkpoint_every_epochs: after every `every`-th epoch of base training, the model
    (`model_of()`: the student while distilling) as a plain float32 `.keras` file in `folder`;
    only the latest MAX_CHECKPOINTS are kept (older files are deleted as new ones come)."""

    def __init__(self, every: int, folder: Path, model_of: Callable[[], keras.Model], reporter: Reporter) -> None:
        super().__init__()
        self.every, self.folder, self.model_of, self.reporter = every, folder, model_of, reporter
        self.kept: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        done = epoch + 1
        if done % self.every:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        save_keras_model(float32_copy(self.model_of()), self.folder / checkpoint_name(done))
        self.kept.append(done)
        while len(self.kept) > MAX_CHECKPOINTS:
            (self.folder / checkpoint_name(self.kept.pop(0))).unlink(missing_ok=True)
        self.reporter.log(f"checkpoint kept after epoch {done}")


def _technique_chain(
    job: _TrainJob, model: keras.Model, policy: str, steps: list[_Step]
) -> tuple[keras.Model, keras.Model | None]:
    """Each fine-tuning technique in the order given: apply → fit with its callbacks → strip.
    Returns the final plain model and, after QAT, the model the int8 export converts from."""
    t = job.spec.training
    if steps and policy != FLOAT32:  # tfmot's wrappers take float32 layers
        model = float32_copy(model)
        keras.mixed_precision.set_global_policy(FLOAT32)
        job.reporter.log("technique fine-tuning in float32")
    kept: frozenset[str] = frozenset()
    int8_model = None
    for step in steps:
        technique, tspec = step.technique, step.spec
        optimizer = make_optimizer(t.optimizer, technique.learning_rate(tspec, t.optimizer.learning_rate))
        _phase(job.reporter, job.clock, step.phase, technique.label(tspec))
        applied = technique.apply(model, tspec, job.context(kept))
        for line in applied.notes:
            job.reporter.log(line)
        _fit(
            job,
            applied,
            epochs=technique.fine_tune_epochs(tspec, job.steps_per_epoch),
            optimizer=optimizer,
            allow_xla=False,
        )
        model = technique.strip(applied)
        kept |= technique.keeps
        if technique.int8_from_fine_tuned:
            int8_model = applied.model
    return model, int8_model


def _fit(
    job: _TrainJob,
    applied: Applied,
    *,
    epochs: int,
    optimizer: keras.optimizers.Optimizer,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    allow_xla: bool = True,
) -> None:
    fit_phase(
        applied.model,
        job.arrays if applied.arrays is None else applied.arrays,
        training=job.spec.training,
        epochs=epochs,
        optimizer=optimizer,
        loss=job.loss if applied.loss is None else applied.loss,
        metrics=job.metrics if applied.metrics is None else applied.metrics,
        reporter=job.reporter,
        clock=job.clock,
        callbacks=[*callbacks, *applied.callbacks],
        allow_xla=allow_xla,
        classes=job.data.classes,
    )
    if applied.measure is not None:  # e.g. distillation's teacher–student agreement on the test split
        figures = applied.measure()
        job.reporter.log_metrics([(key, job.clock.step, value) for key, value in figures.items()])
        job.reporter.log(", ".join(f"{key} {value:.4f}" for key, value in figures.items()))


def _save_keras_variant(job: _TrainJob, model: keras.Model, test: TestSet) -> keras.Model:
    """The Keras variant: plain float32 layers, loadable with safe_mode as teacher or parent."""
    model = float32_copy(model)
    keras_path = job.workdir / "model.keras"
    save_keras_model(model, keras_path)
    _report(job.reporter, measure_variant(keras_path, "keras", test, job.spec.measurement), job.clock, 0.9)
    return model


def _train_summary(job: _TrainJob, trained_in: str) -> JobSummary:
    clock = job.clock
    return JobSummary(
        epochs_done=clock.epochs_done,
        train_seconds=clock.train_seconds,
        peak_memory_bytes=_peak_rss_bytes(),
        stopped_early=clock.stopped_early,
        extra={
            "steps": clock.step,
            "recipe": techniques_summary(job.spec),
            "precision": trained_in,
            "wall_seconds": time.monotonic() - clock.started,
        },
    )


def _phase(reporter: Reporter, clock: RunClock, index: int, label: str) -> None:
    """Phase k is the k-th entry of `techniques` (0: plain training); the curves go on."""
    reporter.log(f"phase: {label} (from step {clock.step})")
    reporter.log_metrics([("phase", clock.step, float(index))])


def _report(reporter: Reporter, variant: VariantResult, clock: RunClock, fraction: float) -> None:
    if variant.latency_p90_ms is None:
        speed = "latency not measured"
    else:
        speed = f"p90 {variant.latency_p90_ms:.3f} ms (p50 {variant.latency_p50_ms:.3f})"
        if variant.latency_unstable:
            speed += ", unstable: machine busy"
    reporter.log(
        f"{variant.format}: accuracy {variant.accuracy:.4f}, {variant.size_bytes} bytes "
        f"({variant.gzip_bytes} gzip), {speed}"
    )
    reporter.add_variant(variant)
    reporter.progress(fraction, None)


# --- exports (train and optimize) -------------------------------------------------------


def _export_all(
    spec: RunSpec,
    model: keras.Model | Path,
    data: Data,
    test: TestSet,
    reporter: Reporter,
    workdir: Path,
    clock: RunClock | None,
    *,
    qat_model: keras.Model | None = None,
) -> None:
    rep = representative_samples(data.x_train, spec.export_options.representative_samples, spec.dataset.seed)
    for n, fmt in enumerate(spec.exports, start=1):
        from_qat = fmt == "int8" and qat_model is not None
        path = workdir / f"model-{fmt}.tflite"
        started = time.monotonic()
        to_tflite(qat_model if from_qat else model, fmt, path, representative=rep, from_qat=from_qat)
        reporter.log(
            f"exported tflite-{fmt}{' from the QAT model' if from_qat else ''} in {time.monotonic() - started:.1f} s"
        )
        variant = measure_variant(
            path,
            f"tflite-{fmt}",
            test,
            spec.measurement,
            source_model=model if isinstance(model, keras.Model) else None,
            extra={"from_qat": from_qat},
        )
        _report(reporter, variant, clock or RunClock(1), 0.9 + 0.1 * n / max(len(spec.exports), 1))


def _optimize(spec: RunSpec, data: Data, reporter: Reporter, workdir: Path, resolve_model: ModelResolver) -> JobSummary:
    assert spec.parent_run_id is not None  # the spec validator guarantees it
    model = load_keras_model(resolve_model(spec.parent_run_id), "the parent run's model")
    check_input(model, data, "the parent run's model")
    reporter.log(f"phase: post-training export of run {spec.parent_run_id}'s model ({model.count_params()} parameters)")
    started = time.monotonic()
    test = TestSet(data.x_test, data.y_test, data.classes)
    _export_all(spec, model, data, test, reporter, workdir, None)
    return _untrained_summary(reporter, started)


def _untrained_summary(reporter: Reporter, started: float) -> JobSummary:
    """The end of a job that trained nothing (an optimize run, a .tflite or SavedModel upload):
    progress 1, no epochs, its wall seconds since `started` (time.monotonic())."""
    reporter.progress(1.0, 0.0)
    return JobSummary(
        epochs_done=0,
        train_seconds=0.0,
        peak_memory_bytes=_peak_rss_bytes(),
        extra={"wall_seconds": time.monotonic() - started},
    )


# --- an uploaded model ---------------------------------------------------------------------


def _uploaded_start(
    spec: RunSpec, uploaded: UploadedModel, data: Data, reporter: Reporter, workdir: Path
) -> tuple[keras.Model, Data]:
    """An uploaded Keras model, measured as it came (the `uploaded` variant), then made to end in
    logits; and the data shaped for its input."""
    what = f"model #{uploaded.id} ({uploaded.name})"
    model = load_keras_model(uploaded.path, what)
    data = fit_data(tuple(model.input_shape[1:]), data, what)
    reporter.log(f"phase: measuring {what} as uploaded ({model.count_params()} parameters)")
    as_came = workdir / "uploaded.keras"
    save_keras_model(model, as_came)
    test = TestSet(data.x_test, data.y_test, data.classes)
    baseline = as_uploaded(measure_variant(as_came, "keras", test, spec.measurement), uploaded)
    _report(reporter, baseline, RunClock(1), 0.02)
    if baseline.accuracy <= 1.5 / max(data.classes, 1):
        reporter.log(
            f"warning: {what} as uploaded scores {baseline.accuracy:.3f}, about chance for {data.classes} classes: "
            f"check that dataset.normalize ({spec.dataset.normalize}) gives the inputs the model was trained on"
        )
    model, note = logits_model(model, what)
    if note:
        reporter.log(note)
    return model, data


def _uploaded_without_training(
    spec: RunSpec, uploaded: UploadedModel, data: Data, reporter: Reporter, workdir: Path, max_bytes: int
) -> JobSummary:
    """A .tflite upload measured as it is; a SavedModel converted to float32 TFLite and measured
    as the `uploaded` variant, then exported to each format the spec asks for."""
    started = time.monotonic()
    what = f"model #{uploaded.id} ({uploaded.name})"
    model_input = [d for d in (uploaded.preflight.get("inputs") or [{}])[0].get("shape", [])][1:]
    data = fit_data(tuple(model_input), data, what)
    test = TestSet(data.x_test, data.y_test, data.classes)
    if uploaded.format == "tflite":
        reporter.log(f"phase: measuring {what}, a .tflite file, as it is")
        path = workdir / "uploaded.tflite"
        shutil.copyfile(uploaded.path, path)
        _report(
            reporter,
            as_uploaded(measure_variant(path, "tflite-float32", test, spec.measurement), uploaded),
            RunClock(1),
            0.9,
        )
    else:
        reporter.log(f"phase: converting {what}, a SavedModel, to float32 TFLite to measure it")
        folder = extract_saved_model(uploaded.path, workdir / "saved_model", max_bytes)
        path = to_tflite(folder, "float32", workdir / "uploaded.tflite")
        _report(
            reporter,
            as_uploaded(measure_variant(path, "tflite-float32", test, spec.measurement), uploaded),
            RunClock(1),
            0.3,
        )
        _export_all(spec, folder, data, test, reporter, workdir, None)
    return _untrained_summary(reporter, started)
