"""The three user models of the zoo coverage figures (issue 17): what users bring, saved by the
real libraries, for digits' 8x8x1 images and 10 classes (tiny widths: coverage, not accuracy).

- a Keras 3 Functional CNN with Rescaling, Conv2D + BatchNormalization, two branches joined by
  Concatenate and a softmax head;
- a tf-keras Sequential MLP;
- a Keras 3 Functional model holding a nested Sequential block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def functional_cnn(path: Path) -> None:
    import keras

    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Rescaling(1 / 16, name="rescale")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="branch_3x3")(x)
    b = keras.layers.Conv2D(8, 1, activation="relu", name="branch_1x1")(x)
    x = keras.layers.Concatenate(name="concat")([a, b])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    keras.Model(inputs, outputs, name="functional_cnn").save(path)


def sequential_mlp(path: Path) -> None:
    import tf_keras

    model = tf_keras.Sequential(
        [
            tf_keras.Input((8, 8, 1)),
            tf_keras.layers.Flatten(name="flatten"),
            tf_keras.layers.Dense(32, activation="relu", name="hidden"),
            tf_keras.layers.Dropout(0.1, name="drop"),
            tf_keras.layers.Dense(10, name="logits"),
        ],
        name="sequential_mlp",
    )
    model.save(path, save_format="keras_v3")


def nested_keras3(path: Path) -> None:
    import keras

    block = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu", name="conv"), keras.layers.Flatten()],
        name="block",
    )
    inputs = keras.Input((8, 8, 1), name="image")
    outputs = keras.layers.Dense(10, name="logits")(block(inputs))
    keras.Model(inputs, outputs, name="nested_keras3").save(path)


BUILDERS = {
    "user_functional_cnn_keras3": functional_cnn,
    "user_sequential_mlp_tf_keras": sequential_mlp,
    "user_nested_keras3": nested_keras3,
}


def user_sources(folder: Path) -> list[dict[str, Any]]:
    """Saves the three models in `folder`; their coverage sources (`upload_file`)."""
    out = []
    for name, build in BUILDERS.items():
        path = folder / f"{name}.keras"
        build(path)
        out.append({"name": name, "upload_file": str(path)})
    return out
