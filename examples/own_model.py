"""Your own Keras 3 model through optiboard: upload → preflight → prune 80 % + int8 → Pareto chart
next to your model as it came (the README's "Your own model" section).

    OPTIBOARD_URL=http://127.0.0.1:8000 OPTIBOARD_TOKEN=ob_... python examples/own_model.py

Trains a small Keras 3 Functional CNN on Fashion-MNIST (Rescaling, Conv2D + BatchNormalization,
two branches joined by Concatenate, softmax output) for a couple of epochs, as a user would
have, then hands it to optiboard. Needs the Fashion-MNIST files in the Keras cache
(`make fashion-mnist` links Debian's dataset-fashion-mnist there).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import keras

import optiboard


def users_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    (x, y), _ = keras.datasets.fashion_mnist.load_data()
    inputs = keras.Input((28, 28, 1), name="image")
    h = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    h = keras.layers.Conv2D(16, 3, padding="same", name="conv1")(h)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.ReLU(name="relu1")(h)
    h = keras.layers.MaxPooling2D(2, name="pool1")(h)
    a = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="branch_3x3")(h)
    b = keras.layers.Conv2D(32, 1, activation="relu", name="branch_1x1")(h)
    h = keras.layers.Concatenate(name="concat")([a, b])
    h = keras.layers.MaxPooling2D(2, name="pool2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(64, activation="relu", name="dense")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    model = keras.Model(inputs, outputs, name="my_fashion_cnn")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:20_000, ..., None], y[:20_000], epochs=2, batch_size=64, verbose=2)
    return model


def main() -> int:
    ob = optiboard.Client()  # OPTIBOARD_URL / OPTIBOARD_TOKEN
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "my_fashion_cnn.keras"
        users_model().save(path)
        uploaded = ob.upload_model(path, name="my fashion cnn")
    pre = uploaded["preflight"]
    print(
        f"model {uploaded['id']}: {pre['kind']}, {pre['params']:,} parameters, tf-keras copy {pre['tf_keras_copy']['status']}"
    )
    for technique, verdict in pre["techniques"].items():
        print(f"  {technique:8} {verdict['status']:4} {verdict['reason'] or ''}")
    run = ob.optimize_model(
        uploaded["id"],
        {
            "name": "my fashion cnn · pruning 80 % + int8",
            "experiment": "my-model",
            "dataset": {"name": "fashion_mnist", "limit_train": 10_000},
            "training": {"epochs": 0},
            "techniques": [{"name": "pruning", "target_sparsity": 0.8, "epochs": 2}],
            "exports": ["float32", "int8"],
        },
    )
    done = ob.wait(run["id"])
    print(f"run {run['id']} {done['status']} {done['error'] or ''}")
    for v in sorted(ob.variants(run["id"]), key=lambda v: v["size_bytes"]):
        print(f"  {v['format']:15} accuracy {v['accuracy']:.4f}  {v['gzip_bytes'] / 1024:8.1f} KiB gzip")
    print(f"Pareto chart: {ob.url}/compare?runs={run['id']}")
    return 0 if done["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
