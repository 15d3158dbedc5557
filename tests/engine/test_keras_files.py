"""The kept Keras model is the Keras v3 format its name says, on the job thread too (issue 16
item 10: tf-keras wrote legacy HDF5 under `.keras` after the thread's first load, warning each
time), and the loader refuses anything else."""

from __future__ import annotations

import os
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from worker.engine import tfsetup  # noqa: E402,I001
from worker.engine.models import load_keras_model, save_keras_model  # noqa: E402

keras = tfsetup.keras


def _model() -> keras.Model:
    return keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(3)])


def test_saves_after_a_load_on_another_thread_stay_keras_v3(tmp_path: Path) -> None:
    first = tmp_path / "first.keras"
    save_keras_model(_model(), first)

    def job() -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_keras_model(first, "model")  # the measurement harness loads before the next save
            for i in range(3):
                save_keras_model(_model(), tmp_path / f"m{i}.keras")
        return [str(w.message) for w in caught]

    with ThreadPoolExecutor(1) as pool:  # like worker.execution's job thread
        messages = pool.submit(job).result()
    for i in range(3):
        assert zipfile.is_zipfile(tmp_path / f"m{i}.keras"), f"save {i} wrote HDF5"
    assert not [m for m in messages if "HDF5" in m]


def test_an_hdf5_file_named_keras_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    _model().save(path, save_format="h5")
    with pytest.raises(ValueError, match="not a Keras v3 .keras file"):
        load_keras_model(path, "teacher")
