"""Training on an uploaded .npz, end to end through the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def test_training_on_an_upload(tmp_path: Path, run, digits_spec) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images * 15).astype(np.uint8)  # as a user would ship images
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=x[:1400], y_train=d.target[:1400], x_test=x[1400:], y_test=d.target[1400:])
    spec = digits_spec(dataset={"name": "upload", "upload_id": 7}, model={"architecture": "mlp"}, exports=["float32"])
    _, rep = run(spec, tmp_path, upload=lambda i: path if i == 7 else None)
    variant = rep.variant("tflite-float32")
    assert variant.extra["test_examples"] == len(x) - 1400
    assert variant.accuracy > 0.8
