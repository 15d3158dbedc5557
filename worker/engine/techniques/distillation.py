"""Knowledge distillation with a plain Keras fit.

The teacher is fixed, so its logits are computed once and packed next to the labels:
y = [label, teacher logits...]. The loss unpacks them:
alpha·CE(labels, student) + (1−alpha)·T²·KL(softmax(teacher/T) ‖ softmax(student/T)).
The student stays an ordinary functional model (no subclassed trainer), so the pipeline,
callbacks and saving are those of every other phase.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from runspec.spec import DistillationSpec
from worker.engine.models import check_input, load_keras_model
from worker.engine.techniques.base import Applied, PhaseContext, Technique
from worker.engine.tfsetup import keras
from worker.engine.training import Arrays


class Distillation(Technique[DistillationSpec]):
    """Trains the spec's model (the student) from scratch against a finished run's model (the
    teacher): its phase is the run's base training, on packed targets with the loss above."""

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
        teacher = load_keras_model(context.resolve_model(spec.teacher_run_id), "the teacher")
        check_input(teacher, data, "the teacher")
        reporter.log(
            f"phase: distillation from run {spec.teacher_run_id} "
            f"({teacher.count_params()} → {model.count_params()} parameters, "
            f"T={spec.temperature}, alpha={spec.alpha})"
        )
        arrays = Arrays(
            data.x_train,
            pack_targets(data.y_train, teacher_logits(teacher, data.x_train)),
            data.x_val,
            None
            if data.x_val is None or data.y_val is None
            else pack_targets(data.y_val, teacher_logits(teacher, data.x_val)),
        )
        reporter.progress(0.0, None)  # heartbeat after the teacher's pass over the data
        loss = distillation_loss(spec, data.classes, context.training.regularization.label_smoothing)
        return Applied(base=model, model=model, arrays=arrays, loss=loss, metrics=[packed_accuracy])


def pack_targets(labels: np.ndarray, teacher_logits: np.ndarray) -> np.ndarray:
    """[label, teacher logits...] per example: float32 of shape (N, 1 + classes)."""
    return np.concatenate([labels.reshape(-1, 1).astype(np.float32), teacher_logits.astype(np.float32)], axis=1)


def teacher_logits(teacher: keras.Model, x: np.ndarray) -> np.ndarray:
    """The teacher's logits for `x`: float32 of shape (N, classes)."""
    return teacher.predict(x, batch_size=512, verbose=0)


def distillation_loss(spec: DistillationSpec, classes: int, label_smoothing: float = 0.0):
    """The loss of the module docstring over packed targets (Hinton et al. 2015, "Distilling
    the Knowledge in a Neural Network": the T² keeps the soft term's gradients at the scale of
    the hard term's). Returns a scalar float32 tensor per batch."""
    alpha, temp = spec.alpha, spec.temperature

    def distillation_loss(y_true, y_pred):
        labels = tf.cast(y_true[:, 0], tf.int32)
        t_logits = y_true[:, 1:]
        onehot = tf.one_hot(labels, classes)
        if label_smoothing:
            onehot = onehot * (1 - label_smoothing) + label_smoothing / classes
        y_pred = tf.cast(y_pred, tf.float32)
        ce = tf.nn.softmax_cross_entropy_with_logits(onehot, y_pred)
        p_t = tf.nn.softmax(t_logits / temp)
        log_p_t = tf.nn.log_softmax(t_logits / temp)
        log_p_s = tf.nn.log_softmax(y_pred / temp)
        kl = tf.reduce_sum(p_t * (log_p_t - log_p_s), axis=-1)
        return tf.reduce_mean(alpha * ce + (1 - alpha) * temp**2 * kl)

    return distillation_loss


def packed_accuracy(y_true, y_pred):
    """Accuracy against the label column of the packed targets."""
    labels = tf.cast(y_true[:, 0], tf.int64)
    return tf.cast(tf.equal(tf.argmax(y_pred, axis=-1), labels), tf.float32)


packed_accuracy.__name__ = "accuracy"  # same metric key as every other phase
