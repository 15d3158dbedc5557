"""Issue 16 item 8: the Keras callback uploads the final model on request, and a run measures it
with the same harness as every optiboard run, in the same experiment (so it lands on the Pareto
chart). Real Keras 3 training, the live stack's API and Celery worker; upload problems are one
warning and never reach the user's script."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

import optiboard
from runspec.spec import DatasetSpec
from tests.conftest import Stack

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # as in the worker; Keras 3 is `import keras`

pytestmark = [pytest.mark.services, pytest.mark.tensorflow]


def test_the_final_model_is_uploaded_and_measured_like_any_other(live_stack: Stack) -> None:
    import keras

    from optiboard.keras import OptiboardCallback
    from worker.engine.data import load_data

    data = load_data(DatasetSpec(name="digits"), lambda _: None)  # type: ignore[arg-type,return-value]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(24, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    client = optiboard.Client(live_stack.url, token=live_stack.token)
    cb = OptiboardCallback(
        client,
        run_name="callback final model",
        experiment="callback-final",
        upload_model=True,
        measure_on="digits",
        measure_spec={"exports": ["float32"], "measurement": {"protocol": "quick", "latency_runs": 10}},
    )
    model.fit(data.x_train, data.y_train, epochs=2, batch_size=32, callbacks=[cb], verbose=0)
    assert cb.run_id is not None and cb.model_id is not None and cb.measure_run_id is not None
    uploaded = client.get_model(cb.model_id)
    assert uploaded["keras_flavour"] == "keras3" and f"run {cb.run_id}" in uploaded["name"]
    run = client.wait(cb.measure_run_id, timeout=240)
    assert run["status"] == "succeeded", run["error"]
    assert run["experiment"] == "callback-final" and "final-model" in run["tags"]
    variants = {v["format"]: v for v in client.variants(cb.measure_run_id)}
    expected = float(np.mean(np.argmax(model.predict(data.x_test, verbose=0), axis=-1) == data.y_test))
    assert variants["uploaded"]["accuracy"] == pytest.approx(expected, abs=1e-9)
    assert variants["tflite-float32"]["accuracy"] == pytest.approx(expected, abs=0.01)
    client.close()


def test_an_upload_problem_is_one_warning_and_training_goes_on(
    live_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    import keras

    from optiboard.keras import OptiboardCallback

    x = np.random.default_rng(0).normal(size=(64, 8, 8, 1)).astype("float32")
    y = np.arange(64) % 10
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    client = optiboard.Client(live_stack.url, token=live_stack.token)
    # fashion_mnist images are 28x28: the server refuses to measure an 8x8 model on them (422)
    cb = OptiboardCallback(client, run_name="mismatch", upload_model=True, measure_on="fashion_mnist")
    with caplog.at_level(logging.WARNING, logger="optiboard.keras"):
        history = model.fit(x, y, epochs=1, callbacks=[cb], verbose=0)
    assert len(history.history["loss"]) == 1
    assert client.get_run(cb.run_id)["status"] == "succeeded"  # the curves' run is not touched
    assert cb.model_id is not None and cb.measure_run_id is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "uploaded but not measured" in warnings[0] and "(8, 8, 1)" in warnings[0]
    with pytest.raises(ValueError, match="upload_model=True"):
        OptiboardCallback(client, measure_on="digits")
    client.close()
