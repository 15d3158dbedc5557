"""Where the built-in datasets live and whether a machine has them (standard library only).

`digits` ships with scikit-learn; the Keras datasets are read from the Keras cache
(`$KERAS_HOME/datasets`, default `~/.keras/datasets`) and never downloaded at run time. The worker
refuses a run whose files are missing (one line, before any download is tried), and the launch
form marks such a dataset unavailable with the same reason.
"""

from __future__ import annotations

import os
from pathlib import Path

# dataset name → (sub-folder of the Keras cache, files the Keras loader reads there)
KERAS_FILES: dict[str, tuple[str, list[str]]] = {
    "mnist": ("", ["mnist.npz"]),
    "fashion_mnist": (
        "fashion-mnist",
        [
            "train-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
        ],
    ),
    "cifar10": ("", ["cifar-10-batches-py.tar.gz"]),
}


def keras_cache_dir() -> Path:
    """The folder the Keras dataset loaders read: $KERAS_HOME/datasets or ~/.keras/datasets."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def missing_files(name: str) -> tuple[Path, list[str]]:
    """The folder a built-in Keras dataset is read from and which of its files are not there
    (an empty list: the dataset is available; a dataset that needs no files has none missing)."""
    if name not in KERAS_FILES:
        return keras_cache_dir(), []
    sub, files = KERAS_FILES[name]
    folder = keras_cache_dir() / sub
    return folder, [f for f in files if not (folder / f).exists()]
