"""Validation of uploaded .npz datasets with numpy only (the API calls it; no TensorFlow)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_CLASSES = 1000
ALLOWED_X_KINDS = "uifb"  # unsigned, signed, float, bool: no objects, strings or complex


def validate_npz(path: Path | str) -> dict[str, Any]:
    """Check an uploaded dataset and describe it; raise ValueError saying what is wrong.

    Expects the keys x_train, y_train, x_test, y_test; x arrays of shape (N, ...) with the
    same per-example shape (N, F), (N, H, W) or (N, H, W, C); y arrays of N integer labels in
    [0, classes). Never unpickles (allow_pickle=False).
    """
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"not a readable .npz file: {exc}") from exc
    with npz:
        missing = [k for k in REQUIRED_KEYS if k not in npz.files]
        if missing:
            raise ValueError(f"missing arrays {missing}; expected keys {list(REQUIRED_KEYS)}")
        try:
            arrays = {k: npz[k] for k in REQUIRED_KEYS}
        except ValueError as exc:  # object arrays need pickle
            raise ValueError(f"an array could not be read without pickle: {exc}") from exc
    x_tr, y_tr, x_te, y_te = (arrays[k] for k in REQUIRED_KEYS)
    for name in ("x_train", "x_test"):
        x = arrays[name]
        if x.dtype.kind not in ALLOWED_X_KINDS:
            raise ValueError(f"{name} has dtype {x.dtype}; expected numbers")
        if x.ndim not in (2, 3, 4):
            raise ValueError(f"{name} has shape {x.shape}; expected (N, F), (N, H, W) or (N, H, W, C)")
        if x.shape[0] == 0:
            raise ValueError(f"{name} is empty")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise ValueError(f"x_train examples have shape {x_tr.shape[1:]} but x_test {x_te.shape[1:]}")
    for name, y, x in (("y_train", y_tr, x_tr), ("y_test", y_te, x_te)):
        if y.dtype.kind not in "iu":
            raise ValueError(f"{name} has dtype {y.dtype}; expected integer class labels")
        if y.ndim != 1:
            raise ValueError(f"{name} has shape {y.shape}; expected (N,) integer labels")
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{name} has {y.shape[0]} labels for {x.shape[0]} examples")
        if y.min() < 0:
            raise ValueError(f"{name} has negative labels")
    classes = int(max(y_tr.max(), y_te.max())) + 1
    if classes < 2:
        raise ValueError("need at least 2 classes")
    if classes > MAX_CLASSES:
        raise ValueError(f"{classes} classes; at most {MAX_CLASSES} are supported")
    if int(y_te.max()) >= int(y_tr.max()) + 1:
        raise ValueError("y_test has labels that never occur in y_train")
    return {
        "train_examples": int(x_tr.shape[0]),
        "test_examples": int(x_te.shape[0]),
        "input_shape": [int(d) for d in x_tr.shape[1:]],
        "x_dtype": str(x_tr.dtype),
        "classes": classes,
        "bytes": int(sum(a.nbytes for a in arrays.values())),
    }
