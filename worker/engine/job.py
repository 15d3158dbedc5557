"""One job, top to bottom: data → model → technique chain → Keras variant → TFLite exports.

`run_job` is what the worker's Celery task calls. Every produced model is written in
`workdir`, measured by the one harness and handed to `reporter.add_variant`.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path

from runspec.spec import (
    ClusteringSpec,
    DistillationSpec,
    PruningSpec,
    QATSpec,
    RunSpec,
    techniques_summary,
)
from worker.engine import tfsetup  # noqa: I001 - first: sets TF_USE_LEGACY_KERAS before TF loads
from worker.engine.callbacks import RunClock
from worker.engine.contract import JobSummary, ModelResolver, Reporter, UploadResolver
from worker.engine.data import Data, load_data
from worker.engine.export import representative_samples, to_tflite
from worker.engine.measure import TestSet, measure_variant
from worker.engine.models import build_model
from worker.engine.optimizers import make_loss, make_optimizer, schedule_callbacks
from worker.engine.precision import FLOAT32, float32_copy, for_training
from worker.engine.techniques import clustering, pruning, qat
from worker.engine.techniques import distillation as distill
from worker.engine.tfsetup import keras
from worker.engine.training import Arrays, fit_phase, steps_per_epoch

log = logging.getLogger(__name__)


def run_job(spec: RunSpec, reporter: Reporter, *, workdir: Path,
            resolve_model: ModelResolver, resolve_upload: UploadResolver) -> JobSummary:
    keras.backend.clear_session()  # a warm worker process runs many jobs
    tfsetup.seed_everything(spec.training.seed)
    keras.mixed_precision.set_global_policy(FLOAT32)
    try:
        data = load_data(spec.dataset, resolve_upload)
        reporter.log(f"data: {spec.dataset.name}, {len(data.x_train)} train, "
                     f"{0 if data.x_val is None else len(data.x_val)} validation, "
                     f"{len(data.x_test)} test, input {data.input_shape}, {data.classes} classes")
        reporter.progress(0.0, None)  # heartbeat: loading a large set can take a while
        if spec.kind == "optimize":
            return _optimize(spec, data, reporter, workdir, resolve_model)
        return _train(spec, data, reporter, workdir, resolve_model)
    finally:
        keras.mixed_precision.set_global_policy(FLOAT32)


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def load_keras_model(path: Path, what: str) -> keras.Model:
    """Only the Keras v3 format, in safe mode: never unpickle code from an artifact."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{what} must be a .keras model file, got {path.name!r}")
    return keras.models.load_model(path, safe_mode=True, compile=False)


def _check_input(model: keras.Model, data: Data, what: str) -> None:
    expected = tuple(model.input_shape[1:])
    if expected != data.input_shape:
        raise ValueError(f"{what} expects inputs of shape {expected} but the dataset has {data.input_shape}")
    if model.output_shape[-1] != data.classes:
        raise ValueError(f"{what} has {model.output_shape[-1]} outputs but the dataset has {data.classes} classes")


# --- train ------------------------------------------------------------------------------

def _train(spec: RunSpec, data: Data, reporter: Reporter, workdir: Path,
           resolve_model: ModelResolver) -> JobSummary:
    t = spec.training
    spe = steps_per_epoch(len(data.x_train), t.batch_size)
    chain = list(spec.techniques)
    tune_epochs = sum(x.fine_tuning_epochs(spe) for x in chain if not isinstance(x, DistillationSpec))
    clock = RunClock(total_steps=spe * (t.epochs + tune_epochs))
    reporter.log(f"recipe: {techniques_summary(spec)}")
    arrays = Arrays(data.x_train, data.y_train, data.x_val, data.y_val)
    metrics = ["accuracy"]
    loss = make_loss(data.classes, t.regularization.label_smoothing)

    # 1. base training, or distillation from a finished run's model (it replaces the base)
    if spec.model.init_from_run_id is not None:
        model = load_keras_model(resolve_model(spec.model.init_from_run_id), "the initial model")
        _check_input(model, data, "the initial model")
        reporter.log(f"starting from run {spec.model.init_from_run_id}'s model")
    else:
        model = build_model(spec.model, data.input_shape, data.classes, t.regularization)
    policy = FLOAT32
    if t.epochs:  # mixed precision covers base training and distillation
        model, policy, note = for_training(model, t.pipeline.mixed_precision)
        if note:
            reporter.log(note)
    phase_arrays, phase_loss, phase_metrics = arrays, loss, metrics
    first = chain[0] if chain else None
    if isinstance(first, DistillationSpec):
        chain = chain[1:]
        teacher = load_keras_model(resolve_model(first.teacher_run_id), "the teacher")
        _check_input(teacher, data, "the teacher")
        reporter.log(f"phase: distillation from run {first.teacher_run_id} "
                     f"({teacher.count_params()} → {model.count_params()} parameters, "
                     f"T={first.temperature}, alpha={first.alpha})")
        phase_arrays = Arrays(
            data.x_train, distill.pack_targets(data.y_train, distill.teacher_logits(teacher, data.x_train)),
            data.x_val, None if data.x_val is None else distill.pack_targets(
                data.y_val, distill.teacher_logits(teacher, data.x_val)))
        reporter.progress(0.0, None)  # heartbeat after the teacher's pass over the data
        phase_loss = distill.distillation_loss(first, data.classes, t.regularization.label_smoothing)
        phase_metrics = [distill.packed_accuracy]
        _phase(reporter, clock, 1, "distillation")
        del teacher
    elif t.epochs:
        _phase(reporter, clock, 0, f"training {model.name} ({model.count_params()} parameters)")
    callbacks = schedule_callbacks(t.schedule, t.optimizer.learning_rate, t.epochs, spe)
    early = None
    if t.early_stopping and data.x_val is not None:
        early = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=t.early_stopping.patience,
            min_delta=t.early_stopping.min_delta, restore_best_weights=True)
        callbacks.append(early)
    if t.epochs:
        fit_phase(model, phase_arrays, training=t, epochs=t.epochs,
                  optimizer=make_optimizer(t.optimizer), loss=phase_loss, metrics=phase_metrics,
                  reporter=reporter, clock=clock, callbacks=callbacks)
    if early is not None and early.stopped_epoch > 0:
        clock.stopped_early = True
        reporter.log(f"early stopping after epoch {early.stopped_epoch + 1}; best weights restored")

    # 2. fine-tuning techniques, in the order given; tfmot's wrappers take float32 layers
    trained_in = policy
    if chain and policy != FLOAT32:
        model, policy = float32_copy(model), FLOAT32
        keras.mixed_precision.set_global_policy(FLOAT32)
        reporter.log("technique fine-tuning in float32")
    sparse = clustered = False
    qat_model = None
    offset = len(spec.techniques) - len(chain)
    for i, tech in enumerate(chain, start=offset + 1):
        lr, tech_epochs = tech.fine_tuning_rate(t.optimizer.learning_rate), tech.fine_tuning_epochs(spe)
        tune = dict(training=t, epochs=tech_epochs, optimizer=make_optimizer(t.optimizer, lr),
                    loss=loss, metrics=metrics, reporter=reporter, clock=clock, allow_xla=False)
        if isinstance(tech, PruningSpec):
            _phase(reporter, clock, i, f"pruning to {tech.target_sparsity:.0%} ({tech.schedule})")
            wrapped, cbs = pruning.apply_pruning(model, tech, spe * tech_epochs)
            fit_phase(wrapped, arrays, callbacks=cbs, **tune)
            model, sparse = pruning.strip_pruning(wrapped), True
        elif isinstance(tech, ClusteringSpec):
            _phase(reporter, clock, i, f"clustering to {tech.number_of_clusters} clusters")
            wrapped, cbs, names = clustering.apply_clustering(model, tech, preserve_sparsity=sparse)
            reporter.log(f"clustered layers: {', '.join(names) or 'none'}")
            fit_phase(wrapped, arrays, callbacks=cbs, **tune)
            model, clustered = clustering.strip_clustering(wrapped), True
        elif isinstance(tech, QATSpec):
            _phase(reporter, clock, i, "quantization-aware training")
            qat_model = qat.apply_qat(model, preserve_sparsity=sparse, preserve_clusters=clustered)
            fit_phase(qat_model, arrays, **tune)
            model = qat.float_weights_from_qat(qat_model, model)
        else:  # pragma: no cover - the spec puts distillation first
            raise ValueError(f"technique {tech.name!r} cannot follow others")
    train_seconds = clock.train_seconds
    reporter.log(f"training done in {train_seconds:.1f} s over {clock.epochs_done} epochs")

    # 3. the Keras variant (plain layers: loadable with safe_mode as teacher or parent)
    test = TestSet(data.x_test, data.y_test, data.classes)
    model = float32_copy(model)
    keras_path = workdir / "model.keras"
    model.save(keras_path)
    _report(reporter, measure_variant(keras_path, "keras", test, spec.measurement), clock, 0.9)

    # 4. TFLite exports
    _export_all(spec, model, data, test, reporter, workdir, clock, qat_model=qat_model)
    reporter.progress(1.0, 0.0)
    return JobSummary(
        epochs_done=clock.epochs_done, train_seconds=train_seconds,
        peak_memory_bytes=_peak_rss_bytes(), stopped_early=clock.stopped_early,
        extra={"steps": clock.step, "recipe": techniques_summary(spec), "precision": trained_in,
               "wall_seconds": time.monotonic() - clock.started},
    )


def _phase(reporter: Reporter, clock: RunClock, index: int, label: str) -> None:
    """Phase k is the k-th entry of `techniques` (0: plain training); the curves go on."""
    reporter.log(f"phase: {label} (from step {clock.step})")
    reporter.log_metrics([("phase", clock.step, float(index))])


def _report(reporter: Reporter, variant, clock: RunClock, fraction: float) -> None:
    reporter.log(f"{variant.format}: accuracy {variant.accuracy:.4f}, {variant.size_bytes} bytes "
                 f"({variant.gzip_bytes} gzip), p50 {variant.latency_p50_ms:.3f} ms")
    reporter.add_variant(variant)
    reporter.progress(fraction, None)


# --- exports (train and optimize) -------------------------------------------------------

def _export_all(spec: RunSpec, model: keras.Model, data: Data, test: TestSet, reporter: Reporter,
                workdir: Path, clock: RunClock | None, *, qat_model: keras.Model | None = None) -> None:
    rep = representative_samples(data.x_train, spec.export_options.representative_samples,
                                 spec.dataset.seed)
    for n, fmt in enumerate(spec.exports, start=1):
        from_qat = fmt == "int8" and qat_model is not None
        path = workdir / f"model-{fmt}.tflite"
        started = time.monotonic()
        to_tflite(qat_model if from_qat else model, fmt, path, representative=rep, from_qat=from_qat)
        reporter.log(f"exported tflite-{fmt}{' from the QAT model' if from_qat else ''} "
                     f"in {time.monotonic() - started:.1f} s")
        variant = measure_variant(path, f"tflite-{fmt}", test, spec.measurement, source_model=model,
                                  extra={"from_qat": from_qat})
        _report(reporter, variant, clock or RunClock(1), 0.9 + 0.1 * n / max(len(spec.exports), 1))


def _optimize(spec: RunSpec, data: Data, reporter: Reporter, workdir: Path,
              resolve_model: ModelResolver) -> JobSummary:
    assert spec.parent_run_id is not None  # the spec validator guarantees it
    model = load_keras_model(resolve_model(spec.parent_run_id), "the parent run's model")
    _check_input(model, data, "the parent run's model")
    reporter.log(f"phase: post-training export of run {spec.parent_run_id}'s model "
                 f"({model.count_params()} parameters)")
    started = time.monotonic()
    test = TestSet(data.x_test, data.y_test, data.classes)
    _export_all(spec, model, data, test, reporter, workdir, None)
    reporter.progress(1.0, 0.0)
    return JobSummary(epochs_done=0, train_seconds=0.0, peak_memory_bytes=_peak_rss_bytes(),
                      extra={"wall_seconds": time.monotonic() - started})
