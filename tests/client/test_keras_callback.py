"""The Keras callback logs a user's own tf_keras model.fit on digits into an external run."""

from __future__ import annotations

import math
import os

import pytest

import optiboard
from tests.conftest import Stack

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras = tf_keras, as in the worker


@pytest.mark.slow
def test_callback_logs_batches_and_epochs_and_finishes(live_stack: Stack) -> None:
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits

    from optiboard.keras import OptiboardCallback

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [tf.keras.layers.Input((64,)), tf.keras.layers.Dense(32, activation="relu"), tf.keras.layers.Dense(10)]
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(0.01),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    client = optiboard.Client(live_stack.url, token=live_stack.token, batch_size=64)
    cb = OptiboardCallback(client, run_name="keras-callback", experiment="client-tests", log_every_n_batches=5)
    batches_per_epoch = math.ceil(len(x) * 0.8 / 64)
    model.fit(x, y, batch_size=64, epochs=3, validation_split=0.2, callbacks=[cb], verbose=0)

    assert cb.run_id is not None
    run = client.get_run(cb.run_id)
    assert run["status"] == "succeeded" and run["external"] is True
    series = client.metrics(cb.run_id, max_points=100_000)
    total = 3 * batches_per_epoch
    # batch points every 5 batches plus the last partial interval of each epoch
    per_epoch = math.ceil(batches_per_epoch / 5)
    assert len(series["loss"]["steps"]) == 3 * per_epoch
    assert series["loss"]["steps"][-1] == total
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch"):
        assert series[key]["steps"] == [batches_per_epoch, 2 * batches_per_epoch, total], key
    assert series["epoch"]["values"] == [1.0, 2.0, 3.0]
    assert series["lr"]["values"][0] == pytest.approx(0.01)
    assert series["train_loss"]["values"][-1] < series["train_loss"]["values"][0]
    assert all(np.isfinite(series["loss"]["values"]))
    client.close()
