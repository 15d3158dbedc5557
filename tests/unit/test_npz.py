"""Upload validation (numpy only); training on an upload is tests/engine/test_upload_training.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runspec.npz import validate_npz


def _save(path: Path, **arrays) -> Path:
    rng = np.random.default_rng(0)
    base = {
        "x_train": rng.integers(0, 255, (60, 6, 6), dtype=np.uint8),
        "y_train": rng.integers(0, 3, 60),
        "x_test": rng.integers(0, 255, (20, 6, 6), dtype=np.uint8),
        "y_test": rng.integers(0, 3, 20),
    }
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_valid_upload_is_described(tmp_path: Path) -> None:
    info = validate_npz(_save(tmp_path / "ok.npz"))
    assert info["train_examples"] == 60 and info["test_examples"] == 20
    assert info["input_shape"] == [6, 6] and info["classes"] == 3 and info["x_dtype"] == "uint8"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y_test": None}, "missing arrays ['y_test']"),
        ({"x_test": np.zeros((20, 5, 6), np.uint8)}, "x_test"),
        ({"y_train": np.arange(59)}, "59 labels for 60 examples"),
        ({"y_train": np.full(60, -1)}, "labels outside 0..0: [-1]"),
        ({"y_train": np.full(60, 0.5, np.float32)}, "not integers, e.g. [0.5"),
        ({"x_train": np.full((60, 6, 6), np.nan)}, "NaN"),
        ({"x_train": np.array(["a"] * 60)}, "expected numbers"),
    ],
)
def test_bad_uploads_say_why(tmp_path: Path, arrays: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_npz(_save(tmp_path / "bad.npz", **arrays))


def test_pickled_arrays_are_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "obj.npz", x_train=np.array([object()] * 60, dtype=object))
    with pytest.raises(ValueError, match="only be read with pickle"):
        validate_npz(path)


def test_not_an_npz(tmp_path: Path) -> None:
    (tmp_path / "x.npz").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a readable"):
        validate_npz(tmp_path / "x.npz")
