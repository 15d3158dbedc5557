"""Optimizers with gradient clipping, learning-rate schedules as Keras callbacks, and losses.

Schedules are callbacks rather than LearningRateSchedule objects so that reduce-on-plateau
(which needs validation results) and warm-up compose the same way, the current rate is a plain
variable the reporter can log, and fine-tuning phases can restart a schedule.
"""

from __future__ import annotations

import math

import tensorflow as tf

from runspec.spec import OptimizerSpec, ScheduleSpec
from worker.engine.tfsetup import keras


class _FusedAdamStep:
    """Adam's dense update as TensorFlow's one fused kernel (`ResourceApplyAdam`) instead of the
    ~10 element-wise ops Keras 2's optimizer emits per variable, each a pass over memory: on the
    seed CNN those were ~14 % of a CPU training step. Same rule and rounding order as Keras
    (m, v, then var -= lr·√(1−β₂ᵗ)/(1−β₁ᵗ)·m/(√v+ε)); sparse gradients, AMSGrad and the adaptive
    epsilon keep Keras's own update."""

    def update_step(self, gradient, variable):
        if isinstance(gradient, tf.IndexedSlices) or self.amsgrad or getattr(self, "adaptive_epsilon", False):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._index_dict[self._var_key(variable)]
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(self.learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=gradient,
            use_locking=False,
        )


class FusedAdam(_FusedAdamStep, keras.optimizers.Adam):
    pass


class FusedAdamW(_FusedAdamStep, keras.optimizers.AdamW):
    pass  # the decoupled weight decay is applied by the base class before update_step


def make_optimizer(spec: OptimizerSpec, learning_rate: float | None = None) -> keras.optimizers.Optimizer:
    lr = spec.learning_rate if learning_rate is None else learning_rate
    clip = {"clipnorm": spec.clipnorm, "clipvalue": spec.clipvalue}
    if spec.name == "sgd":
        return keras.optimizers.SGD(lr, momentum=spec.momentum, nesterov=spec.nesterov, **clip)
    if spec.name == "adam":
        return FusedAdam(lr, **clip)
    if spec.name == "adamw":
        return FusedAdamW(lr, weight_decay=spec.weight_decay, **clip)
    if spec.name == "rmsprop":
        return keras.optimizers.RMSprop(lr, momentum=spec.momentum, **clip)
    raise ValueError(f"unknown optimizer {spec.name!r}")  # pragma: no cover


def scheduled_rate(spec: ScheduleSpec, base_lr: float, epoch_float: float, total_epochs: int) -> float:
    """The rate at a fractional epoch for the closed-form schedules (not plateau)."""
    if spec.warmup_epochs and epoch_float < spec.warmup_epochs:
        return base_lr * (epoch_float + 1e-9) / spec.warmup_epochs
    e = epoch_float - spec.warmup_epochs
    if spec.name == "step":
        lr = base_lr * spec.gamma ** math.floor(e / spec.step_epochs)
    elif spec.name == "exponential":
        lr = base_lr * spec.gamma**e
    elif spec.name == "cosine":
        span = max(total_epochs - spec.warmup_epochs, 1e-9)
        lr = spec.min_learning_rate + 0.5 * (base_lr - spec.min_learning_rate) * (
            1 + math.cos(math.pi * min(e / span, 1.0))
        )
    else:  # constant and plateau (plateau lowers it from its own callback)
        lr = base_lr
    return max(lr, spec.min_learning_rate)


class ScheduleCallback(keras.callbacks.Callback):
    """Sets the optimizer's rate before each batch from the closed-form schedule."""

    def __init__(self, spec: ScheduleSpec, base_lr: float, epochs: int, steps_per_epoch: int):
        super().__init__()
        self.spec, self.base_lr, self.epochs, self.steps = spec, base_lr, epochs, steps_per_epoch
        self._epoch = 0
        self._warm_done = False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        e = self._epoch + batch / self.steps
        if self.spec.name == "plateau" and e >= self.spec.warmup_epochs:
            # after warm-up the rate belongs to ReduceLROnPlateau; set the base rate once
            if not self._warm_done:
                self.model.optimizer.learning_rate.assign(self.base_lr)
                self._warm_done = True
            return
        self.model.optimizer.learning_rate.assign(scheduled_rate(self.spec, self.base_lr, e, self.epochs))


def schedule_callbacks(
    spec: ScheduleSpec, base_lr: float, epochs: int, steps_per_epoch: int
) -> list[keras.callbacks.Callback]:
    cbs: list[keras.callbacks.Callback] = []
    if spec.name != "constant" or spec.warmup_epochs:
        cbs.append(ScheduleCallback(spec, base_lr, epochs, steps_per_epoch))
    if spec.name == "plateau":
        cbs.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=spec.gamma, patience=spec.patience, min_lr=spec.min_learning_rate, verbose=0
            )
        )
    return cbs


def make_loss(classes: int, label_smoothing: float, *, soft_labels: bool = False):
    """Cross-entropy on logits with integer labels; label smoothing goes through one-hot
    labels because the sparse loss of Keras 2 has no smoothing. With `soft_labels` the labels
    are already float32 (B, classes) distributions (one-hot, or mixed by mixup)."""
    if soft_labels:
        return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)
    if label_smoothing == 0:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    cce = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)

    def smoothed_cross_entropy(y_true, y_pred):
        y = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), classes)
        return cce(y, y_pred)

    return smoothed_cross_entropy
