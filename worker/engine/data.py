"""Datasets as numpy arrays: load, limit, split off validation, normalize.

Every built-in set comes from its usual loader (scikit-learn for digits, the Keras loaders for
the others, offline when the file is in the Keras cache); uploads come from a validated .npz.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runspec.datasets import missing_files
from runspec.npz import DEFAULT_MAX_DATASET_BYTES, load_npz
from runspec.spec import DatasetSpec
from worker.engine.contract import DatasetUnavailable

# The digits test split is fixed for every run so accuracies compare across runs.
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0
DIGITS_MAX = 16.0  # sklearn's digits hold pixel values 0..16 (normalize "none" keeps them)


@dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])


def _load_keras(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from worker.engine.tfsetup import keras

    loader = {
        "mnist": keras.datasets.mnist,
        "fashion_mnist": keras.datasets.fashion_mnist,
        "cifar10": keras.datasets.cifar10,
    }[name]
    folder, missing = missing_files(name)
    if missing:  # never let the loader try to download it
        raise DatasetUnavailable(
            f"dataset {name!r} is not on this worker: missing {', '.join(missing)} in {folder} "
            "(copy the files there or set KERAS_HOME; `make run` links Debian's fashion-mnist)"
        )
    try:
        (x_tr, y_tr), (x_te, y_te) = loader.load_data()
    except Exception as exc:  # a damaged file
        raise DatasetUnavailable(f"dataset {name!r} could not be read from {folder}: {exc}") from exc
    return x_tr, y_tr.reshape(-1), x_te, y_te.reshape(-1)


def _load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32)  # raw pixel values 0..16; normalize "scale" divides by 16
    x_tr, x_te, y_tr, y_te = train_test_split(
        x,
        d.target,
        test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=d.target,
    )
    return x_tr, y_tr, x_te, y_te


def _load_upload(
    path: Path, max_dataset_bytes: int, max_ratio: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The upload's arrays with labels as class indices, after the archive's bounds (sizes from
    its directory and .npy headers, checked before anything is decompressed): the file on disk
    was validated at upload, but the worker checks again before it spends memory on it."""
    x_tr, y_tr, x_te, y_te, info = load_npz(path, max_expanded_bytes=max_dataset_bytes, max_ratio=max_ratio)
    return x_tr, y_tr, x_te, y_te, int(info["classes"])


def _to_float(x: np.ndarray, mode: str) -> np.ndarray:
    if mode == "none":
        return x.astype(np.float32)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    return x.astype(np.float32)  # already floats (digits: divided by DIGITS_MAX in load_data)


def load_data(
    spec: DatasetSpec,
    resolve_upload: Callable[[int], Path],
    *,
    max_dataset_bytes: int = DEFAULT_MAX_DATASET_BYTES,
    max_dataset_ratio: float | None = 1000.0,
) -> Data:
    """The train/validation/test arrays the spec describes, as float32 with a channel axis
    for images and int32 labels 0..classes-1.

    Raises ValueError (npz.DatasetRefused for an upload that breaks its bounds or rules, or when
    the split leaves no training example)."""
    if spec.name == "upload":
        assert spec.upload_id is not None  # the spec validator guarantees it
        x_tr, y_tr, x_te, y_te, classes = _load_upload(
            resolve_upload(spec.upload_id), max_dataset_bytes, max_dataset_ratio
        )
    else:
        x_tr, y_tr, x_te, y_te = _load_digits() if spec.name == "digits" else _load_keras(spec.name)
        classes = int(max(y_tr.max(), y_te.max())) + 1

    if spec.limit_train:
        x_tr, y_tr = x_tr[: spec.limit_train], y_tr[: spec.limit_train]
    if spec.limit_test:
        x_te, y_te = x_te[: spec.limit_test], y_te[: spec.limit_test]

    x_tr, x_te = _to_float(x_tr, spec.normalize), _to_float(x_te, spec.normalize)
    if spec.name == "digits" and spec.normalize == "scale":  # its pixels are 0..16, not 0..255
        x_tr, x_te = x_tr / DIGITS_MAX, x_te / DIGITS_MAX
    if spec.normalize == "standardize":  # statistics of the training set only
        mean, std = float(x_tr.mean()), float(x_tr.std()) or 1.0
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    if x_tr.ndim == 3:  # (N, H, W) images get a channel axis for the convolutions
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    y_tr, y_te = y_tr.astype(np.int32), y_te.astype(np.int32)

    x_val = y_val = None
    if spec.validation_split > 0:
        order = np.random.default_rng(spec.seed).permutation(len(x_tr))
        n_val = max(1, int(round(len(x_tr) * spec.validation_split)))
        val_idx, tr_idx = order[:n_val], order[n_val:]
        x_val, y_val = x_tr[val_idx], y_tr[val_idx]
        x_tr, y_tr = x_tr[tr_idx], y_tr[tr_idx]
    if len(x_tr) == 0:  # the API refuses such specs at submit; a stale spec must not reach TensorFlow
        raise ValueError(
            f"dataset.validation_split {spec.validation_split} leaves no training example "
            f"of {len(x_tr) + (0 if x_val is None else len(x_val))}"
        )
    return Data(x_tr, y_tr, x_val, y_val, x_te, y_te, classes)
