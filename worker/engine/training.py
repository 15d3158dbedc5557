"""One training phase: the tf.data input pipeline and a compiled Keras fit.

Every phase of a job (base training, distillation, pruning/clustering/QAT fine-tuning) goes
through `fit_phase`, so the pipeline, callbacks and step counting are the same for all.

The run's augmentation (random shifts and flips) and mixup act on whole training batches inside
the pipeline (`batch_transform`), drawn from stateless random ops whose seeds come from a
`tf.data.Dataset.random(training.seed)` stream that changes every epoch: the same spec gives
the same batches, every phase and technique sees them as they are, and validation or test
batches are never changed (only their labels become one-hot when mixup makes training labels
soft, so one loss serves both).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from runspec.spec import AugmentationSpec, PipelineSpec, TrainingSpec
from worker.engine.callbacks import ReporterCallback, RunClock
from worker.engine.contract import Reporter
from worker.engine.tfsetup import keras

BatchTransform = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    pipeline: PipelineSpec,
    seed: int,
    transform: BatchTransform | None = None,
) -> tf.data.Dataset:
    """Batches from in-memory arrays, reshuffled every epoch with a fixed seed and prefetched
    so the next batch is ready when a step ends.

    With `pipeline.cache` the arrays enter the pipeline once as two whole tensors (nothing is
    sliced per image): each epoch shuffles only the indices and a batch is one gather. Without
    it, images go through tf.data one by one (slices → shuffle → batch).

    `transform(x, y, seed)` changes each batch (augmentation, mixup): `seed` is an int64 tensor
    of shape (2,) for stateless random ops, a different one per batch and per epoch, the same
    sequence for the same `seed` argument."""
    if pipeline.cache:
        index = tf.data.Dataset.range(len(x))
        if shuffle:
            index = index.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        arrays = tf.data.Dataset.from_tensors((x, y)).repeat()
        ds = tf.data.Dataset.zip((index.batch(batch_size), arrays)).map(_gather)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
    if transform is not None:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda batch, s: transform(batch[0], batch[1], s), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    if pipeline.prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds


def _gather(index: tf.Tensor, arrays: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.gather(arrays[0], index), tf.gather(arrays[1], index)


def shift_images(x: tf.Tensor, max_fraction: float, seed: tf.Tensor) -> tf.Tensor:
    """Each image of `x` (float, shape (B, H, W, C)) translated by a whole number of pixels drawn
    uniformly in [−round(max_fraction·H), +round(max_fraction·H)] rows and likewise for columns,
    independently per image; the uncovered border is 0. Same shape and dtype as `x`."""
    height, width = int(x.shape[1]), int(x.shape[2])
    max_dy, max_dx = round(max_fraction * height), round(max_fraction * width)
    if max_dy == 0 and max_dx == 0:
        return x
    n = tf.shape(x)[0]
    seed_y, seed_x = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    dy = tf.random.stateless_uniform([n], seed_y, minval=-max_dy, maxval=max_dy + 1, dtype=tf.int32)
    dx = tf.random.stateless_uniform([n], seed_x, minval=-max_dx, maxval=max_dx + 1, dtype=tf.int32)
    dy, dx = tf.cast(dy, tf.float32), tf.cast(dx, tf.float32)
    one, zero = tf.ones_like(dx), tf.zeros_like(dx)
    # output pixel (col, row) reads input pixel (col − dx, row − dy): the image moves by (dx, dy)
    transforms = tf.stack([one, zero, -dx, zero, one, -dy, zero, zero], axis=1)
    shifted = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(x, tf.float32),
        transforms=transforms,
        output_shape=tf.constant([height, width], tf.int32),
        fill_value=0.0,
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    )
    return tf.cast(shifted, x.dtype)


def flip_images(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Each image of `x` (shape (B, H, W, C)) mirrored left-right with probability 1/2."""
    flip = tf.random.stateless_uniform([tf.shape(x)[0], 1, 1, 1], seed) < 0.5
    return tf.where(flip, tf.reverse(x, axis=[2]), x)


def augment_images(x: tf.Tensor, spec: AugmentationSpec, seed: tf.Tensor) -> tf.Tensor:
    """`x` (B, H, W, C) shifted then flipped as `spec` says (shift_images, flip_images)."""
    seed_shift, seed_flip = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if spec.shift > 0:
        x = shift_images(x, spec.shift, seed_shift)
    if spec.horizontal_flip:
        x = flip_images(x, seed_flip)
    return x


def mixup(x: tf.Tensor, labels: tf.Tensor, alpha: float, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization"): with one
    λ ~ Beta(α, α) per batch (drawn as G₁/(G₁+G₂), Gᵢ ~ Gamma(α)) and a random permutation π
    of the batch, x' = λ·x + (1−λ)·x[π] and y' = λ·y + (1−λ)·y[π].

    `x`: float (B, ...); `labels`: float32 one-hot or soft labels (B, classes). Returns x' of
    x's shape and dtype and y' float32 (B, classes), rows summing to 1."""
    seed_lam, seed_perm = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    g = tf.random.stateless_gamma([2], seed_lam, alpha=alpha, dtype=tf.float32)
    lam = g[0] / tf.maximum(g[0] + g[1], 1e-12)
    perm = tf.argsort(tf.random.stateless_uniform([tf.shape(x)[0]], seed_perm))
    mixed_x = lam * tf.cast(x, tf.float32) + (1 - lam) * tf.gather(tf.cast(x, tf.float32), perm)
    mixed_y = lam * labels + (1 - lam) * tf.gather(labels, perm)
    return tf.cast(mixed_x, x.dtype), mixed_y


def one_hot_labels(y: tf.Tensor, classes: int) -> tf.Tensor:
    """Integer labels (B,) or (B, 1) → float32 one-hot (B, classes)."""
    return tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), classes, dtype=tf.float32)


def batch_transform(training: TrainingSpec, classes: int, input_shape: tuple[int, ...]) -> BatchTransform | None:
    """The run's per-batch training transform (augmentation, then mixup), or None when both are
    off. With mixup the labels come out one-hot mixed, float32 (B, classes); otherwise as they
    went in. Raises ValueError when augmentation is asked for on inputs that are not images."""
    aug, alpha = training.augmentation, training.mixup_alpha
    if aug.enabled and len(input_shape) != 3:
        raise ValueError(
            f"training.augmentation shifts and flips images (H, W, C); this dataset's inputs have shape {input_shape}"
        )
    if not aug.enabled and not alpha:
        return None

    def transform(x: tf.Tensor, y: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        seed_aug, seed_mix = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if aug.enabled:
            x = augment_images(x, aug, seed_aug)
        if alpha:
            x, y = mixup(x, one_hot_labels(y, classes), alpha, seed_mix)
        return x, y

    return transform


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


@dataclass(frozen=True)
class Arrays:
    """Training inputs of a phase: x float32 (N, *input_shape), y integer labels (N,) (or any
    per-example targets a phase's loss reads); the validation pair likewise, or None."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


def fit_phase(
    model: keras.Model,
    arrays: Arrays,
    *,
    training: TrainingSpec,
    epochs: int,
    optimizer: keras.optimizers.Optimizer,
    loss: Callable | keras.losses.Loss,
    metrics: Sequence,
    reporter: Reporter,
    clock: RunClock,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    allow_xla: bool = True,
    classes: int | None = None,
) -> keras.callbacks.History:
    """Compile and fit `model` for `epochs` epochs; updates `clock` (steps, epochs, time).

    Training batches go through the run's augmentation and mixup (`batch_transform`; `classes`
    is needed for mixup's one-hot labels, default: the model's last output dimension); with
    mixup, validation labels are made one-hot too, so `loss` must take one-hot labels
    (make_loss(..., soft_labels=True))."""
    pipe = training.pipeline
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=list(metrics),
        steps_per_execution=pipe.steps_per_execution,
        jit_compile=bool(pipe.xla and allow_xla),
    )
    if classes is None:
        classes = int(model.output_shape[-1])
    transform = batch_transform(training, classes, tuple(arrays.x.shape[1:]))
    train_ds = make_dataset(
        arrays.x, arrays.y, training.batch_size, shuffle=True, pipeline=pipe, seed=training.seed, transform=transform
    )
    val_ds = None
    if arrays.x_val is not None and len(arrays.x_val):
        val_ds = make_dataset(
            arrays.x_val,
            arrays.y_val,
            max(training.batch_size, 256),
            shuffle=False,
            pipeline=pipe,
            seed=training.seed,
            transform=(lambda x, y, _s: (x, one_hot_labels(y, classes))) if training.mixup_alpha else None,
        )
    spe = steps_per_epoch(len(arrays.x), training.batch_size)
    reporter_cb = ReporterCallback(reporter, clock, training.log_every_n_batches, spe)
    start = time.monotonic()
    try:
        return model.fit(
            train_ds, validation_data=val_ds, epochs=epochs, verbose=0, callbacks=[reporter_cb, *callbacks]
        )
    finally:
        clock.train_seconds += time.monotonic() - start
