"""Knowledge distillation taught consistently: the teacher sees every batch the student sees.

Hinton et al. 2015 ("Distilling the Knowledge in a Neural Network") train the student on
α·CE(labels, student) + (1−α)·T²·KL(softmax(teacher/T) ‖ softmax(student/T)). Beyer et al. 2022
("Knowledge distillation: A good teacher is patient and consistent") show that the teacher's
targets must be computed on the very (augmented, mixed) input the student gets, every step:
logits cached once over un-augmented images give the student nothing over training from scratch
(docs/results.md). So the phase fits a `Distiller`, a small Keras `Model` wrapper whose
`train_step` runs the frozen teacher and the student on the same batch, after the run's
augmentation and mixup (worker.engine.training.batch_transform). It goes through `fit_phase` like
every other phase (callbacks, logging, cancel checks, early stopping, schedules), and `strip`
hands back the student: an ordinary functional model, saved and measured as any other.

Temperature T and weight α may follow per-epoch schedules (runspec.spec.scheduled_value). After
the fit, the teacher–student agreement on the test split is recorded as run metrics
(`agreement`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from runspec.spec import DistillationSpec
from worker.engine.models import check_input, load_keras_model
from worker.engine.techniques.base import Applied, PhaseContext, Technique
from worker.engine.tfsetup import keras

AGREEMENT_KEY = "distillation/top1_agreement"
MEAN_KL_KEY = "distillation/mean_kl"


class Distillation(Technique[DistillationSpec]):
    """Trains the spec's model (the student) from scratch against a finished run's model (the
    teacher): its phase is the run's base training, with the loss above on every batch."""

    spec_type = DistillationSpec
    replaces_training = True

    def label(self, spec: DistillationSpec) -> str:
        return "distillation"

    def fine_tune_epochs(self, spec: DistillationSpec, steps_per_epoch: int) -> int:
        return 0  # the student trains for training.epochs in the base phase

    def learning_rate(self, spec: DistillationSpec, training_rate: float) -> float:
        return training_rate

    def apply(self, model: keras.Model, spec: DistillationSpec, context: PhaseContext) -> Applied:
        """Raises ValueError when the teacher is not a .keras file or does not fit the data."""
        data, reporter = context.data, context.reporter
        if spec.teacher_epoch is None:
            source = context.resolve_model(spec.teacher_run_id)
        else:
            source = context.resolve_checkpoint(spec.teacher_run_id, spec.teacher_epoch)
        what = "the teacher" if spec.teacher_epoch is None else f"the teacher's epoch-{spec.teacher_epoch} checkpoint"
        teacher = load_keras_model(source, what)
        check_input(teacher, data, what)
        epochs = context.training.epochs
        schedule = ""
        if spec.temperature_schedule != "constant" or spec.alpha_schedule != "constant":
            schedule = (
                f" → T={spec.temperature_at(epochs - 1, epochs):g}, alpha={spec.alpha_at(epochs - 1, epochs):g} "
                f"({spec.temperature_schedule} T, {spec.alpha_schedule} alpha)"
            )
        reporter.log(
            f"phase: distillation from run {spec.teacher_run_id}"
            f"{'' if spec.teacher_epoch is None else f' at epoch {spec.teacher_epoch}'} "
            f"({teacher.count_params()} → {model.count_params()} parameters, "
            f"T={spec.temperature:g}, alpha={spec.alpha:g}{schedule}); teacher logits on every augmented batch"
        )
        distiller = Distiller(
            model, teacher, spec, data.classes, context.training.regularization.label_smoothing, epochs
        )
        x_test = data.x_test

        def measure() -> dict[str, float]:
            return agreement(predict_logits(distiller.teacher, x_test), predict_logits(distiller.student, x_test))

        return Applied(
            base=model,
            model=distiller,
            loss=None,
            metrics=[],
            callbacks=[DistillationSchedule(spec, epochs)],
            measure=measure,
        )

    def strip(self, applied: Applied) -> keras.Model:
        """The student (an ordinary functional model) with the weights the phase trained."""
        assert isinstance(applied.model, Distiller)
        return applied.model.student


def distillation_loss(
    labels: tf.Tensor,
    teacher_logits: tf.Tensor,
    student_logits: tf.Tensor,
    *,
    alpha: tf.Tensor | float,
    temperature: tf.Tensor | float,
    classes: int,
    label_smoothing: float = 0.0,
) -> tf.Tensor:
    """Per-example α·CE(labels, student) + (1−α)·T²·KL(softmax(t/T) ‖ softmax(s/T)) (Hinton et
    al. 2015: the T² keeps the soft term's gradients at the scale of the hard term's).

    `labels`: integer (B,) or float32 distributions (B, classes) (one-hot, mixed by mixup);
    label smoothing ε makes them (1−ε)·y + ε/classes. Logits: (B, classes), any float dtype.
    Returns float32 (B,), in nats."""
    if labels.shape.rank == 1 or (labels.shape.rank == 2 and labels.shape[-1] == 1):
        labels = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), classes)
    labels = tf.cast(labels, tf.float32)
    if label_smoothing:
        labels = labels * (1 - label_smoothing) + label_smoothing / classes
    s = tf.cast(student_logits, tf.float32)
    t = tf.cast(teacher_logits, tf.float32)
    ce = tf.nn.softmax_cross_entropy_with_logits(labels, s)
    log_p_t = tf.nn.log_softmax(t / temperature)
    log_p_s = tf.nn.log_softmax(s / temperature)
    kl = tf.reduce_sum(tf.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
    return alpha * ce + (1 - alpha) * temperature**2 * kl


class Distiller(keras.Model):
    """The student trained against a frozen teacher on the same batch, every step.

    `call` is the student's; `train_step`/`test_step` compute the teacher's logits on the batch
    they are given (never cached), the loss `distillation_loss` at the current `temperature` and
    `alpha` (variables set per epoch by `DistillationSchedule`) plus the student's regularization
    losses, and track `loss` and `accuracy` (argmax of the student against argmax of the labels,
    which for mixed labels is the larger share) as running means over the epoch."""

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model,
        spec: DistillationSpec,
        classes: int,
        label_smoothing: float,
        epochs: int,
    ) -> None:
        super().__init__(name="distiller")
        self.student, self.teacher = student, teacher
        teacher.trainable = False
        self.classes, self.label_smoothing = classes, label_smoothing
        self.temperature = tf.Variable(spec.temperature_at(0, epochs), trainable=False, dtype=tf.float32)
        self.alpha = tf.Variable(spec.alpha_at(0, epochs), trainable=False, dtype=tf.float32)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")

    def call(self, x, training=False):
        return self.student(x, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def _loss(self, x, y, training: bool):
        teacher_logits = self.teacher(x, training=False)  # on this very batch: consistent teaching
        student_logits = self.student(x, training=training)
        per_example = distillation_loss(
            y,
            teacher_logits,
            student_logits,
            alpha=self.alpha,
            temperature=self.temperature,
            classes=self.classes,
            label_smoothing=self.label_smoothing,
        )
        loss = tf.reduce_mean(per_example)
        if self.student.losses:
            loss += tf.add_n([tf.cast(r, tf.float32) for r in self.student.losses])
        return loss, student_logits

    def _track(self, loss, y, student_logits):
        truth = tf.cast(tf.reshape(y, [-1]), tf.int64) if y.shape.rank == 1 else tf.argmax(y, axis=-1)
        hit = tf.cast(tf.equal(tf.argmax(student_logits, axis=-1), truth), tf.float32)
        # weighted by batch size, as Keras's own loss mean (a last, smaller batch counts less)
        self.loss_tracker.update_state(loss, sample_weight=tf.cast(tf.shape(student_logits)[0], tf.float32))
        self.accuracy_tracker.update_state(hit)
        return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss, student_logits = self._loss(x, y, training=True)
        self.optimizer.minimize(loss, self.student.trainable_variables, tape=tape)
        return self._track(loss, y, student_logits)

    def test_step(self, data):
        x, y = data
        loss, student_logits = self._loss(x, y, training=False)
        return self._track(loss, y, student_logits)


class DistillationSchedule(keras.callbacks.Callback):
    """Sets the Distiller's `temperature` and `alpha` at the start of each epoch from the spec's
    schedules (DistillationSpec.temperature_at / alpha_at over `epochs`)."""

    def __init__(self, spec: DistillationSpec, epochs: int) -> None:
        super().__init__()
        self.spec, self.epochs = spec, epochs

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.model.temperature.assign(self.spec.temperature_at(epoch, self.epochs))
        self.model.alpha.assign(self.spec.alpha_at(epoch, self.epochs))


def predict_logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """`model`'s logits for `x`: float32 of shape (N, classes)."""
    return np.asarray(model.predict(x, batch_size=512, verbose=0), dtype=np.float32)


def agreement(teacher_logits: np.ndarray, student_logits: np.ndarray) -> dict[str, float]:
    """Teacher–student agreement at T = 1 (as Stanton et al. 2021, "Does Knowledge Distillation
    Really Work?", measure fidelity): the fraction of examples where both argmaxes are the same
    (`distillation/top1_agreement`, in [0, 1]) and the mean over examples of
    KL(softmax(teacher) ‖ softmax(student)) in nats (`distillation/mean_kl`, ≥ 0).

    Both arguments: float logits of shape (N, classes), N ≥ 1. Raises ValueError otherwise."""
    t = np.asarray(teacher_logits, dtype=np.float64)
    s = np.asarray(student_logits, dtype=np.float64)
    if t.shape != s.shape or t.ndim != 2 or len(t) == 0:
        raise ValueError(f"need two logit arrays of the same shape (N, classes), got {t.shape} and {s.shape}")

    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    log_p_t, log_p_s = log_softmax(t), log_softmax(s)
    kl = (np.exp(log_p_t) * (log_p_t - log_p_s)).sum(axis=1)
    return {
        AGREEMENT_KEY: float(np.mean(t.argmax(axis=1) == s.argmax(axis=1))),
        MEAN_KL_KEY: float(np.mean(kl)),
    }
