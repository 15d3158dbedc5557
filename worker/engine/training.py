"""One training phase: the tf.data input pipeline and a compiled Keras fit.

Every phase of a job (base training, distillation, pruning/clustering/QAT fine-tuning) goes
through `fit_phase`, so the pipeline, callbacks and step counting are the same for all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from runspec.spec import PipelineSpec, TrainingSpec
from worker.engine.callbacks import ReporterCallback, RunClock
from worker.engine.contract import Reporter
from worker.engine.tfsetup import keras


def make_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, pipeline: PipelineSpec, seed: int
) -> tf.data.Dataset:
    """Batches from in-memory arrays, reshuffled every epoch with a fixed seed and prefetched
    so the next batch is ready when a step ends.

    With `pipeline.cache` the arrays enter the pipeline once as two whole tensors (nothing is
    sliced per image): each epoch shuffles only the indices and a batch is one gather. Without
    it, images go through tf.data one by one (slices → shuffle → batch)."""
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
    if pipeline.prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds


def _gather(index: tf.Tensor, arrays: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.gather(arrays[0], index), tf.gather(arrays[1], index)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


@dataclass(frozen=True)
class Arrays:
    """Training inputs of a phase; `y` may carry more than labels (distillation packs the
    teacher's logits next to them)."""

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
) -> keras.callbacks.History:
    """Compile and fit `model` for `epochs` epochs; updates `clock` (steps, epochs, time)."""
    pipe = training.pipeline
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=list(metrics),
        steps_per_execution=pipe.steps_per_execution,
        jit_compile=bool(pipe.xla and allow_xla),
    )
    train_ds = make_dataset(arrays.x, arrays.y, training.batch_size, shuffle=True, pipeline=pipe, seed=training.seed)
    val_ds = None
    if arrays.x_val is not None and len(arrays.x_val):
        val_ds = make_dataset(
            arrays.x_val, arrays.y_val, max(training.batch_size, 256), shuffle=False, pipeline=pipe, seed=training.seed
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
