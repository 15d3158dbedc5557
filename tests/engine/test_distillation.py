"""Consistent distillation and the run's augmentation and mixup, in the engine: the batch
transforms, the loss, the teacher called on every augmented batch, agreement figures, and a
real digits job through run_job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from runspec.spec import DistillationSpec, PipelineSpec, RunSpec, TrainingSpec
from worker.engine.callbacks import RunClock
from worker.engine.job import run_job
from worker.engine.models import load_keras_model
from worker.engine.optimizers import make_optimizer
from worker.engine.techniques.distillation import (
    AGREEMENT_KEY,
    MEAN_KL_KEY,
    DistillationSchedule,
    Distiller,
    agreement,
    distillation_loss,
)
from worker.engine.tfsetup import keras
from worker.engine.training import Arrays, batch_transform, fit_phase, flip_images, make_dataset, mixup, shift_images

from .conftest import RecordingReporter, no_upload

CLASSES = 4


def _images(n: int = 64, side: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, side, side, 1), dtype=np.float32), rng.integers(0, CLASSES, n).astype(np.int64)


def _epoch(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def _training(**over) -> TrainingSpec:
    return TrainingSpec.model_validate({"batch_size": 16, "seed": 3, **over})


# --- augmentation and mixup ----------------------------------------------------------------


def test_shift_moves_whole_images_by_whole_pixels_and_flip_mirrors() -> None:
    x = np.zeros((32, 10, 10, 1), np.float32)
    x[:, 4:6, 4:6, 0] = 1.0  # a 2×2 square in the middle: never pushed out by a 1-pixel shift
    out = shift_images(tf.constant(x), 0.1, tf.constant([1, 2], tf.int64)).numpy()
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.all(out.sum(axis=(1, 2, 3)) == 4.0)  # nearest, whole pixels: the square intact
    rows = [np.argwhere(o[:, :, 0])[0] - [4, 4] for o in out]
    assert {tuple(r) for r in rows} <= {(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)}
    assert len({tuple(r) for r in rows}) > 3  # drawn per image
    lopsided = np.zeros((64, 4, 4, 1), np.float32)
    lopsided[:, :, 0, 0] = 1.0
    flipped = flip_images(tf.constant(lopsided), tf.constant([5, 6], tf.int64)).numpy()
    mirrored = flipped[:, :, 3, 0].all(axis=1)
    assert np.array_equal(mirrored, ~flipped[:, :, 0, 0].all(axis=1)) and 10 < mirrored.sum() < 54


def test_mixup_mixes_images_and_labels_with_the_same_lambda_and_partner() -> None:
    # every pixel of an image holds its own label: a mixed image must equal its mixed label
    labels = np.arange(16) % CLASSES
    onehot = np.eye(CLASSES, dtype=np.float32)[labels]
    x = np.repeat(onehot[:, None, None, :], 3, axis=1).repeat(3, axis=2)  # (16, 3, 3, CLASSES)
    mixed_x, mixed_y = mixup(tf.constant(x), tf.constant(onehot), 0.4, tf.constant([7, 8], tf.int64))
    mixed_x, mixed_y = mixed_x.numpy(), mixed_y.numpy()
    assert mixed_x.shape == x.shape and mixed_x.dtype == np.float32 and mixed_y.shape == (16, CLASSES)
    np.testing.assert_allclose(mixed_x[:, 1, 1, :], mixed_y, atol=1e-6)
    np.testing.assert_allclose(mixed_y.sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(mixed_y, onehot)  # something was mixed


def test_the_transform_is_seeded_changes_every_epoch_and_leaves_validation_alone() -> None:
    x, y = _images()
    training = _training(augmentation={"shift": 0.25, "horizontal_flip": True}, mixup_alpha=0.3)
    transform = batch_transform(training, CLASSES, x.shape[1:])

    def dataset(seed: int) -> tf.data.Dataset:
        return make_dataset(x, y, 16, shuffle=True, pipeline=PipelineSpec(), seed=seed, transform=transform)

    ds = dataset(3)
    (x1, y1), (x2, _) = _epoch(ds), _epoch(ds)
    again = _epoch(dataset(3))
    assert x1.dtype == np.float32 and x1.shape == x.shape and y1.shape == (64, CLASSES) and y1.dtype == np.float32
    np.testing.assert_array_equal(x1, again[0])  # same seed, same batches
    np.testing.assert_array_equal(y1, again[1])
    assert not np.array_equal(x1, x2)  # a new draw every epoch
    assert not np.array_equal(x1, _epoch(dataset(4))[0])  # another seed, other batches
    assert batch_transform(_training(), CLASSES, x.shape[1:]) is None  # both off: nothing in the pipeline
    with pytest.raises(ValueError, match="training.augmentation"):
        batch_transform(training, CLASSES, (64,))


def test_validation_batches_are_not_augmented(make_reporter) -> None:
    """val_loss after the last epoch is the loss on the untouched validation images."""
    x, y = _images(96)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(CLASSES)])
    training = _training(augmentation={"shift": 0.25, "horizontal_flip": True}, mixup_alpha=0.4, epochs=1)
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    history = fit_phase(
        model,
        Arrays(x[:64], y[:64], x[64:], y[64:]),
        training=training,
        epochs=1,
        optimizer=make_optimizer(training.optimizer),
        loss=loss,
        metrics=["accuracy"],
        reporter=make_reporter(),
        clock=RunClock(4),
        classes=CLASSES,
    )
    clean = float(loss(np.eye(CLASSES)[y[64:]], model.predict(x[64:], verbose=0)))
    assert history.history["val_loss"][-1] == pytest.approx(clean, rel=1e-5)


# --- the loss, the teacher on every batch, agreement -------------------------------------


def test_distillation_loss_matches_the_formula_by_hand() -> None:
    t, s = np.array([[2.0, 0.0, -1.0]]), np.array([[0.5, 0.5, 0.0]])
    temp, alpha = 2.0, 0.25

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    p_t, p_s = softmax(t[0] / temp), softmax(s[0] / temp)
    kl = np.sum(p_t * np.log(p_t / p_s))
    ce = -np.log(softmax(s[0])[0])
    want = alpha * ce + (1 - alpha) * temp**2 * kl
    got = distillation_loss(tf.constant([0]), tf.constant(t), tf.constant(s), alpha=alpha, temperature=temp, classes=3)
    assert got.shape == (1,) and got.dtype == tf.float32
    assert float(got[0]) == pytest.approx(want, rel=1e-5)
    soft = distillation_loss(
        tf.constant([[1.0, 0.0, 0.0]]), tf.constant(t), tf.constant(s), alpha=alpha, temperature=temp, classes=3
    )
    assert float(soft[0]) == pytest.approx(want, rel=1e-5)  # one-hot labels: the same loss


class _Recorder(keras.layers.Layer):
    """Identity that adds up every input it is called on (calls and the sum of their values)."""

    def build(self, input_shape):
        self.calls = self.add_weight(name="calls", shape=(), initializer="zeros", trainable=False)
        self.total = self.add_weight(name="total", shape=(), initializer="zeros", trainable=False)

    def call(self, x):
        self.calls.assign_add(tf.cast(tf.shape(x)[0], tf.float32))
        self.total.assign_add(tf.reduce_sum(tf.cast(x, tf.float32)))
        return x


def test_the_teacher_sees_every_augmented_batch_the_student_sees(make_reporter) -> None:
    """Cached logits would call the teacher once on the clean images; consistent teaching calls
    it every step, on the very augmented and mixed batches the pipeline produces."""
    x, y = _images()
    recorder = _Recorder()
    inputs = keras.Input((8, 8, 1))
    teacher = keras.Model(inputs, keras.layers.Dense(CLASSES)(keras.layers.Flatten()(recorder(inputs))))
    student = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(CLASSES)])
    spec = DistillationSpec(name="distillation", teacher_run_id=1)
    training = _training(augmentation={"shift": 0.25, "horizontal_flip": True}, mixup_alpha=0.3, epochs=2)
    distiller = Distiller(student, teacher, spec, CLASSES, 0.0, 2)
    kernel_before = teacher.layers[-1].get_weights()[0].copy()
    fit_phase(
        distiller,
        Arrays(x, y),
        training=training,
        epochs=2,
        optimizer=make_optimizer(training.optimizer),
        loss=None,
        metrics=[],
        reporter=make_reporter(),
        clock=RunClock(8),
        classes=CLASSES,
    )
    seen = make_dataset(
        x,
        y,
        16,
        shuffle=True,
        pipeline=PipelineSpec(),
        seed=training.seed,
        transform=batch_transform(training, CLASSES, x.shape[1:]),
    )
    # Keras makes an iterator before its epoch loop and a fresh one per epoch: epochs 1 and 2
    # are the dataset's 2nd and 3rd iterations (each one draws anew)
    sums = [float(_epoch(seen)[0].sum()) for _ in range(3)]
    expected = sums[1] + sums[2]
    assert float(recorder.calls.numpy()) == 2 * len(x)
    assert float(recorder.total.numpy()) == pytest.approx(expected, rel=1e-4)
    assert abs(expected - 2 * float(x.sum())) > 1.0  # the clean images would add up otherwise
    np.testing.assert_array_equal(teacher.layers[-1].get_weights()[0], kernel_before)  # frozen


def test_the_schedule_sets_temperature_and_alpha_each_epoch() -> None:
    spec = DistillationSpec(
        name="distillation",
        teacher_run_id=1,
        temperature=5.0,
        temperature_schedule="linear",
        temperature_end=1.0,
        alpha=0.0,
        alpha_schedule="cosine",
        alpha_end=1.0,
    )
    student = keras.Sequential([keras.Input((2,)), keras.layers.Dense(CLASSES)])
    distiller = Distiller(student, keras.models.clone_model(student), spec, CLASSES, 0.0, 3)
    callback = DistillationSchedule(spec, 3)
    callback.set_model(distiller)
    seen = []
    for epoch in range(3):
        callback.on_epoch_begin(epoch)
        seen.append((float(distiller.temperature.numpy()), float(distiller.alpha.numpy())))
    assert seen == [(5.0, 0.0), (3.0, pytest.approx(0.5)), (1.0, 1.0)]


def test_agreement_against_a_hand_computed_case() -> None:
    teacher = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]))
    student = np.log(np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]]))
    figures = agreement(teacher, student)
    kl0 = 0.7 * np.log(0.7 / 0.6) + 0.2 * np.log(0.2 / 0.3)
    kl1 = 0.1 * np.log(0.1 / 0.5) + 0.8 * np.log(0.8 / 0.4)
    assert figures[AGREEMENT_KEY] == pytest.approx(2 / 3)
    assert figures[MEAN_KL_KEY] == pytest.approx((kl0 + kl1 + 0.0) / 3)
    assert agreement(teacher + 5.0, teacher)[MEAN_KL_KEY] == pytest.approx(0.0, abs=1e-12)  # shift-invariant
    with pytest.raises(ValueError, match="same shape"):
        agreement(teacher, student[:2])


# --- a real job -----------------------------------------------------------------------------


def test_a_digits_job_distils_with_augmentation_mixup_and_a_teacher_checkpoint(tmp_path: Path) -> None:
    """A teacher keeps checkpoints; a student distils from its epoch-2 checkpoint with shifts,
    mixup and a temperature schedule; the student is an ordinary model and the agreement
    figures are run metrics."""
    teacher_spec = RunSpec.model_validate(
        {
            "dataset": {"name": "digits"},
            "training": {"epochs": 4, "checkpoint_every_epochs": 2, "augmentation": {"shift": 0.125}},
            "exports": [],
            "measurement": {"protocol": "off"},
        }
    )
    teacher_rep = RecordingReporter()
    (tmp_path / "teacher").mkdir()
    run_job(teacher_spec, teacher_rep, workdir=tmp_path / "teacher", resolve_model=None, resolve_upload=no_upload)  # type: ignore[arg-type]
    kept = sorted(p.name for p in (tmp_path / "teacher" / "checkpoints").iterdir())
    assert kept == ["epoch-2.keras", "epoch-4.keras"]
    asked: list[tuple[int, int]] = []

    def resolve_checkpoint(run_id: int, epoch: int) -> Path:
        asked.append((run_id, epoch))
        return tmp_path / "teacher" / "checkpoints" / f"epoch-{epoch}.keras"

    student_spec = RunSpec.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": {"width_multiplier": 0.5},
            "training": {
                "epochs": 4,
                "augmentation": {"shift": 0.125},
                "mixup_alpha": 0.2,
                "log_every_n_batches": 5,
                "checkpoint_every_epochs": 4,
            },
            "techniques": [
                {
                    "name": "distillation",
                    "teacher_run_id": 1,
                    "teacher_epoch": 2,
                    "temperature": 4.0,
                    "temperature_schedule": "linear",
                    "temperature_end": 2.0,
                    "alpha": 0.1,
                }
            ],
            "exports": ["float32"],
            "measurement": {"protocol": "off"},
        }
    )
    rep = RecordingReporter()
    (tmp_path / "student").mkdir()
    summary = run_job(
        student_spec,
        rep,
        workdir=tmp_path / "student",
        resolve_model=lambda i: teacher_rep.variant("keras").path,
        resolve_upload=no_upload,
        resolve_checkpoint=resolve_checkpoint,
    )
    assert asked == [(1, 2)]
    assert summary.epochs_done == 4
    student = rep.variant("keras")
    assert student.params < 0.3 * teacher_rep.variant("keras").params
    assert student.accuracy > 0.5  # 4 short epochs on mixed, shifted 8×8 digits
    assert rep.variant("tflite-float32").accuracy == pytest.approx(student.accuracy, abs=0.01)
    agree, kl = rep.series(AGREEMENT_KEY), rep.series(MEAN_KL_KEY)
    assert len(agree) == 1 and 0.5 < agree[0][1] <= 1.0 and len(kl) == 1 and kl[0][1] >= 0
    assert agree[0][0] == max(s for s, _ in rep.series("loss"))  # at the phase's last step
    assert any("epoch-2 checkpoint" not in line and "at epoch 2" in line for line in rep.lines)
    loaded = load_keras_model(student.path, "the student")
    assert not isinstance(loaded, Distiller) and loaded.count_params() == student.params
    # a distilled run's checkpoints are the student's, not the wrapper's (no teacher inside)
    kept = load_keras_model(tmp_path / "student" / "checkpoints" / "epoch-4.keras", "the checkpoint")
    assert kept.count_params() == student.params
