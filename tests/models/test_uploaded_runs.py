"""Issue 17 item 4 end to end: a user's own model, uploaded over HTTP, is measured as it came and
then optimized by a real Celery worker with real TensorFlow (the session's live stack: API, one
worker, Redis, SQLite).

- a Keras 3 Functional model (Rescaling, Conv2D + BatchNormalization, Concatenate, a nested
  Sequential, softmax output) gets a faithful tf-keras copy at upload, runs pruning then full
  int8, and its `uploaded` variant's accuracy is the accuracy of the file as uploaded, computed
  here independently with Keras 3 on the same test split;
- a tf-keras Sequential MLP taking (8, 8) runs on digits' (8, 8, 1) images;
- a .tflite file is measured as it is; a SavedModel is converted and exported to int8;
- what cannot work is a 422 naming the field before anything is queued.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from optiboard import Client as OptiboardClient
from runspec.spec import DatasetSpec
from tests.conftest import Stack
from tests.models import keras_models
from tests.stack import REPO
from worker.engine.data import load_data

pytestmark = [pytest.mark.services, pytest.mark.tensorflow]

FAST = {"latency_runs": 10, "warmup_runs": 2, "throughput_batch": 8, "protocol": "quick"}


def _digits(normalize: str = "scale") -> Any:
    return load_data(DatasetSpec(name="digits", normalize=normalize), lambda _: Path("/nonexistent"))


def _keras3_digits_cnn(path: Path) -> keras.Model:
    """What a user brings: a trained Keras 3 Functional CNN that scales its own inputs (raw
    digits pixels are 0-16), with a nested block and softmax."""
    data = _digits("none")
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Rescaling(1 / 16, name="rescale")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    a = keras.layers.Conv2D(8, 1, activation="relu", name="branch_a")(x)
    b = keras.layers.MaxPooling2D(1, name="branch_b")(x)
    x = keras.layers.Concatenate(name="concat")([a, b])
    block = keras.Sequential(
        [keras.Input((8, 8, 16)), keras.layers.Conv2D(8, 3, activation="relu", name="inner"), keras.layers.Flatten()],
        name="block",
    )
    x = block(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="user_cnn")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=3, batch_size=32, verbose=0)
    model.save(path)
    return model


def _cli(args: list[str], data_dir: Path, stack: Stack) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIBOARD_")}
    env.update(OPTIBOARD_DATA_DIR=str(data_dir), OPTIBOARD_TOKEN=stack.token)
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def _upload(stack: Stack, path: Path, name: str) -> dict[str, Any]:
    with path.open("rb") as f:
        r = stack.client.http.post("/api/models", files={"file": (path.name, f)}, data={"name": name}, timeout=120)
    assert r.status_code == 201, r.text
    return r.json()


def _variants(stack: Stack, run_id: int) -> dict[str, dict[str, Any]]:
    return {v["format"]: v for v in stack.client.http.get(f"/api/runs/{run_id}/variants").json()["data"]}


def _refused(stack: Stack, spec: dict[str, Any]) -> list[dict[str, Any]]:
    r = stack.client.http.post("/api/runs", json=spec)
    assert r.status_code == 422, r.text
    return r.json()["detail"]


def test_a_keras3_model_is_measured_as_it_came_then_pruned_and_quantized(live_stack: Stack, tmp_path: Path) -> None:
    model = _keras3_digits_cnn(tmp_path / "user_cnn.keras")
    data = _digits("none")  # what the model was trained on: it rescales its own inputs
    as_came = float(np.mean(np.argmax(model.predict(data.x_test, verbose=0), axis=-1) == data.y_test))
    uploaded = _upload(live_stack, tmp_path / "user_cnn.keras", "user cnn")
    copy = uploaded["preflight"]["tf_keras_copy"]
    assert copy["status"] == "yes" and copy["max_abs_diff"] < 1e-4

    spec = {
        "name": "user cnn pruned int8",
        "dataset": {"name": "digits"},
        "model": {"upload_id": uploaded["id"]},
        "training": {"epochs": 1, "batch_size": 32},
        "techniques": [{"name": "pruning", "target_sparsity": 0.5, "epochs": 1}],
        "exports": ["float32", "int8"],
        "measurement": FAST,
    }
    run = live_stack.client.submit(spec)
    # Its first layer is Rescaling: the default normalization becomes "none", stored as such.
    assert run["spec"]["dataset"]["normalize"] == "none"
    explicit = live_stack.client.submit({**spec, "dataset": {"name": "digits", "normalize": "scale"}})
    assert explicit["spec"]["dataset"]["normalize"] == "scale"  # what the user says is kept
    live_stack.client.http.post(f"/api/runs/{explicit['id']}/cancel")
    done = live_stack.client.wait_terminal(run["id"], timeout=300)
    assert done["status"] == "succeeded", done["error"]
    variants = _variants(live_stack, run["id"])
    assert set(variants) == {"uploaded", "keras", "tflite-float32", "tflite-int8"}
    baseline = variants["uploaded"]
    assert baseline["accuracy"] == pytest.approx(as_came, abs=1e-9)  # the file as uploaded, not a retrained one
    assert baseline["extra"]["uploaded_model_id"] == uploaded["id"]
    assert baseline["params"] == model.count_params()
    pruned = variants["keras"]
    assert pruned["nonzero_params"] < 0.75 * pruned["params"]  # 50 % of the prunable kernels are zero
    assert variants["tflite-int8"]["accuracy"] > 0.5
    assert done["headline"]["format"] == "tflite-int8"
    text = "\n".join(live_stack.client.http.get(f"/api/runs/{run['id']}/logs").json()["lines"])
    assert "measuring model" in text and "ends in softmax" in text


def test_a_model_taking_hw_runs_on_hw1_images_and_a_tflite_is_measured_only(live_stack: Stack, tmp_path: Path) -> None:
    data = _digits()
    mlp = tf_keras.Sequential(
        [tf_keras.Input((8, 8)), tf_keras.layers.Flatten(), tf_keras.layers.Dense(10, name="logits")], name="hw_mlp"
    )
    mlp.save(tmp_path / "hw_mlp.keras", save_format="keras_v3")
    uploaded = _upload(live_stack, tmp_path / "hw_mlp.keras", "hw mlp")
    run = live_stack.client.submit(
        {
            "name": "hw mlp",
            "dataset": {"name": "digits"},
            "model": {"upload_id": uploaded["id"]},
            "training": {"epochs": 3, "batch_size": 32, "optimizer": {"learning_rate": 0.01}},
            "exports": ["float32"],
            "measurement": FAST,
        }
    )
    done = live_stack.client.wait_terminal(run["id"], timeout=240)
    assert done["status"] == "succeeded", done["error"]
    variants = _variants(live_stack, run["id"])
    untrained = float(np.mean(np.argmax(mlp.predict(data.x_test[..., 0], verbose=0), axis=-1) == data.y_test))
    assert variants["uploaded"]["accuracy"] == pytest.approx(untrained, abs=1e-9)
    assert variants["tflite-float32"]["accuracy"] > untrained + 0.5  # the training happened

    (tmp_path / "hw_mlp.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(mlp).convert())
    # The CLI uploads it (and prints its preflight); the Python client launches the run.
    data_dir = Path(live_stack.settings.data_dir)
    out = _cli(["models", "upload", str(tmp_path / "hw_mlp.tflite"), "--name", "hw mlp tflite"], data_dir, live_stack)
    assert out.returncode == 0, out.stderr
    lite_id = int(out.stdout.split()[0])
    lite = live_stack.client.http.get(f"/api/models/{lite_id}").json()
    assert lite["format"] == "tflite"
    base = {"name": "tflite", "dataset": {"name": "digits"}, "model": {"upload_id": lite["id"]}, "measurement": FAST}
    with OptiboardClient(live_stack.url, token=live_stack.token) as client:
        run = client.optimize_model(lite["id"], {"name": "tflite", "exports": [], "measurement": FAST})
    assert run["spec"]["model"]["upload_id"] == lite["id"] and run["spec"]["training"]["epochs"] == 0
    done = live_stack.client.wait_terminal(run["id"], timeout=120)
    assert done["status"] == "succeeded", done["error"]
    variants = _variants(live_stack, run["id"])
    assert set(variants) == {"uploaded"}
    assert variants["uploaded"]["accuracy"] == pytest.approx(untrained, abs=1e-6)
    assert variants["uploaded"]["size_bytes"] == (tmp_path / "hw_mlp.tflite").stat().st_size
    assert done["headline"]["format"] == "uploaded"

    # A .tflite file is measured only: techniques, training and exports are refused, by field.
    detail = _refused(
        live_stack,
        {**base, "training": {"epochs": 1}, "techniques": [{"name": "pruning", "target_sparsity": 0.5}]},
    )
    locs = {tuple(d["loc"]) for d in detail}
    assert ("body", "techniques") in locs and ("body", "training", "epochs") in locs
    assert ("body", "exports") in locs  # the default export list is not empty
    out = _cli(["models", "optimize", str(lite["id"]), "--prune", "0.5"], data_dir, live_stack)
    assert out.returncode != 0 and "techniques" in out.stderr and ".tflite" in out.stderr, out.stderr


def test_a_saved_model_is_converted_measured_and_exported_to_int8(live_stack: Stack, tmp_path: Path) -> None:
    mlp = tf_keras.Sequential(
        [tf_keras.Input((8, 8, 1)), tf_keras.layers.Flatten(), tf_keras.layers.Dense(10, name="logits")], name="sm"
    )
    folder = tmp_path / "sm"
    tf.saved_model.save(mlp, str(folder))
    archive = tmp_path / "sm.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in folder.rglob("*"):
            zf.write(p, f"sm/{p.relative_to(folder)}")
    uploaded = _upload(live_stack, archive, "saved model")
    spec = {
        "name": "saved model int8",
        "dataset": {"name": "digits"},
        "model": {"upload_id": uploaded["id"]},
        "training": {"epochs": 0},
        "exports": ["int8"],
        "measurement": FAST,
    }
    run = live_stack.client.submit(spec)
    done = live_stack.client.wait_terminal(run["id"], timeout=180)
    assert done["status"] == "succeeded", done["error"]
    variants = _variants(live_stack, run["id"])
    assert set(variants) == {"uploaded", "tflite-int8"}
    assert variants["uploaded"]["extra"]["measured_as"] == "tflite-float32"
    assert variants["tflite-int8"]["size_bytes"] < variants["uploaded"]["size_bytes"]
    detail = _refused(live_stack, {**spec, "training": {"epochs": 2}})
    assert [tuple(d["loc"]) for d in detail] == [("body", "training", "epochs")]


def test_what_cannot_work_is_refused_at_submit_naming_the_field(live_stack: Stack, tmp_path: Path) -> None:
    keras_models.keras3_cnn(tmp_path / "cnn.keras")  # 16x16x3 inputs, 3 classes
    cnn = _upload(live_stack, tmp_path / "cnn.keras", "16px cnn")
    keras_models.keras3_nested(tmp_path / "nested.keras")
    nested = _upload(live_stack, tmp_path / "nested.keras", "nested")
    assert nested["preflight"]["techniques"]["qat"]["status"] != "yes"

    detail = _refused(
        live_stack,
        {"dataset": {"name": "digits"}, "model": {"upload_id": cnn["id"]}, "training": {"epochs": 1}},
    )
    at_dataset = [d["msg"] for d in detail if tuple(d["loc"]) == ("body", "dataset", "name")]
    assert any("takes inputs of shape (16, 16, 3) but the dataset has (8, 8, 1)" in m for m in at_dataset)
    assert any("3 outputs but the dataset has 10 classes" in m for m in at_dataset)

    detail = _refused(live_stack, {"dataset": {"name": "digits"}, "model": {"upload_id": 999_999}})
    assert [tuple(d["loc"]) for d in detail] == [("body", "model", "upload_id")]

    detail = _refused(
        live_stack,
        {"dataset": {"name": "digits"}, "model": {"upload_id": cnn["id"], "init_from_run_id": 1}},
    )
    assert any(tuple(d["loc"])[-1] == "upload_id" for d in detail)


def test_an_uploaded_models_qat_run_gets_its_control(live_stack: Stack, tmp_path: Path) -> None:
    """Same-budget controls on an uploaded Keras 3 model (issue 19 item 2): the control starts
    from the same upload with the same resolved defaults (normalize "none": the model rescales its
    own inputs), fine-tunes as many epochs without QAT, and is measured like its run."""
    _keras3_digits_cnn(tmp_path / "user_cnn.keras")
    uploaded = _upload(live_stack, tmp_path / "user_cnn.keras", "user cnn (control)")
    run = live_stack.client.submit(
        {
            "name": "user cnn qat",
            "dataset": {"name": "digits"},
            "model": {"upload_id": uploaded["id"]},
            "training": {"epochs": 0, "batch_size": 32},
            "techniques": [{"name": "qat", "epochs": 1}],
            "exports": ["int8"],
            "measurement": FAST,
            "control": True,
        }
    )
    twin_id = run["control_run_id"]
    done, twin = live_stack.client.wait_terminal(run["id"], timeout=300), live_stack.client.wait_terminal(twin_id, 300)
    assert done["status"] == twin["status"] == "succeeded", (done["error"], twin["error"])
    assert twin["spec"]["model"]["upload_id"] == uploaded["id"] and twin["spec"]["dataset"]["normalize"] == "none"
    assert twin["spec"]["techniques"] == [{"name": "fine_tuning", "epochs": 1, "learning_rate": pytest.approx(1e-4)}]
    mine, theirs = _variants(live_stack, run["id"]), _variants(live_stack, twin_id)
    assert set(mine) == set(theirs) == {"uploaded", "keras", "tflite-int8"}
    assert mine["uploaded"]["accuracy"] == theirs["uploaded"]["accuracy"]  # the same file as it came
    assert mine["tflite-int8"]["extra"].get("from_qat") and not theirs["tflite-int8"]["extra"].get("from_qat")
    text = "\n".join(live_stack.client.http.get(f"/api/runs/{twin_id}/logs").json()["lines"])
    assert "phase: plain fine-tuning" in text and "over 1 epochs" in text
