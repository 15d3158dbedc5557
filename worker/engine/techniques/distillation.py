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
from worker.engine.tfsetup import keras


def pack_targets(labels: np.ndarray, teacher_logits: np.ndarray) -> np.ndarray:
    return np.concatenate([labels.reshape(-1, 1).astype(np.float32),
                           teacher_logits.astype(np.float32)], axis=1)


def teacher_logits(teacher: keras.Model, x: np.ndarray) -> np.ndarray:
    return teacher.predict(x, batch_size=512, verbose=0)


def distillation_loss(spec: DistillationSpec, classes: int, label_smoothing: float = 0.0):
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
