"""A study whose baseline is an uploaded Keras 3 model, on the real stack (API with its study
loop, one real Celery worker with TensorFlow, Redis, SQLite):

- from the CLI (`studies create --baseline-model ID --dataset digits`): the study waits for the
  baseline run the API created; that run fails on the worker (the stored tf-keras copy of this
  second upload was damaged after its checks), and the study ends `failed` saying why;
- from the Python client (`create_study(baseline_model_id=…, dataset="digits")`): the baseline
  run measures the model as uploaded, then clustering, QAT and pruning+QAT trials fine-tune it
  (init_from_run_id) and are measured, and the study's reference is the baseline run's float32
  .tflite figures, whose accuracy is the uploaded model's own (computed here with Keras 3).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import optiboard
from runspec.spec import DatasetSpec
from tests.conftest import Stack
from tests.stack import REPO
from worker.engine.data import load_data

pytestmark = [pytest.mark.services, pytest.mark.tensorflow]


def _digits_model(path: Path) -> float:
    """A tiny Keras 3 CNN that scales digits' raw 0-16 pixels itself (softmax head), trained for
    a few epochs and saved to `path`; returns its test accuracy as saved (a fraction)."""
    data = load_data(DatasetSpec(name="digits", normalize="none"), lambda _: Path("/nonexistent"))
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Rescaling(1 / 16, name="rescale")(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = keras.layers.Flatten(name="flat")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="user_digits")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=4, batch_size=32, verbose=0)
    model.save(path)
    return float(np.mean(np.argmax(model.predict(data.x_test, verbose=0), axis=-1) == data.y_test))


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "studies", *args, "--url", stack.url, "--token", stack.token],
        cwd=REPO,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


SPACE: dict[str, Any] = {
    # one grid point per chain: exactly these three recipes, each one fine-tuning epoch
    "chains": ["clustering", "qat", "pruning+qat"],
    "exports": ["int8"],
    "grid_points": 1,
    "pruning": {"epochs": {"low": 1, "high": 1}, "target_sparsity": {"low": 0.5, "high": 0.5}},
    "clustering": {"epochs": {"low": 1, "high": 1}, "number_of_clusters": {"low": 16, "high": 16}},
    "qat": {"epochs": {"low": 1, "high": 1}},
}


def test_a_study_from_an_uploaded_model_runs_its_trials_from_the_model(live_stack: Stack, tmp_path: Path) -> None:
    as_saved = _digits_model(tmp_path / "user_digits.keras")
    ob = optiboard.Client(live_stack.url, token=live_stack.token)
    try:
        model = ob.upload_model(tmp_path / "user_digits.keras", name="user digits")

        # CLI: a second upload whose stored tf-keras copy is then damaged, so its baseline run
        # fails on the worker (the SHA-256 check) → the study ends failed, saying why.
        broken = ob.upload_model(tmp_path / "user_digits.keras", name="damaged copy")
        models_dir = Path(str(live_stack.settings.artifact_root)) / "models"
        newest = max(models_dir.glob("*.tf-keras.keras"), key=lambda p: p.stat().st_mtime)
        with newest.open("ab") as f:
            f.write(b"damaged")
        out = _cli(
            live_stack, "create", "--baseline-model", str(broken["id"]), "--dataset", "digits", "--name", "cli-up"
        )
        assert out.returncode == 0, out.stderr
        assert "queued: cli-up" in out.stdout and "waiting for the baseline run" in out.stdout
        assert "left out distillation+pruning" in out.stdout  # the default space, with why
        cli_study = ob.list_studies()[0]
        assert cli_study["name"] == "cli-up" and cli_study["baseline_model_id"] == broken["id"]
        failed = ob.wait_study(cli_study["id"], timeout=120)
        assert failed["status"] == "failed" and failed["trials"] == [] and failed["error"] == failed["stop_reason"]
        assert f"the baseline run {cli_study['baseline_run_id']} ended failed: " in failed["stop_reason"]
        shown = _cli(live_stack, "show", str(cli_study["id"]))
        assert shown.returncode == 0, shown.stderr
        assert f"study {cli_study['id']} failed" in shown.stdout and "ended: the baseline run" in shown.stdout

        # Client: a 422 names the chain the model cannot take, then the real study.
        spec = {
            "name": "client-up",
            "constraint": {"max_drop": 60},  # tests the machinery, not the recipes
            "search_space": SPACE,
            "budget": {"max_trials": 3},
            "strategy": "grid",
            "measurement_protocol": "off",
        }
        with pytest.raises(optiboard.OptiboardError) as refused:
            ob.create_study(
                {**spec, "search_space": {**SPACE, "chains": ["qat", "distillation"]}},
                baseline_model_id=model["id"],
                dataset="digits",
            )
        assert refused.value.status == 422
        assert [d["loc"] for d in refused.value.detail] == [["body", "search_space", "chains", 1]]
        assert "no architecture here to shrink" in refused.value.detail[0]["msg"]
        study = ob.create_study(spec, baseline_model_id=model["id"], dataset="digits")
        assert (
            study["status"] == "queued" and study["note"] == f"waiting for the baseline run {study['baseline_run_id']}"
        )
        done = ob.wait_study(study["id"], timeout=420)
        assert done["status"] == "finished" and done["stop_reason"] == "trial budget spent", done
        base_id = done["baseline_run_id"]
        base = ob.get_run(base_id)
        assert base["status"] == "succeeded" and base["spec"]["model"]["upload_id"] == model["id"]
        variants = {v["format"]: v for v in live_stack.client.http.get(f"/api/runs/{base_id}/variants").json()["data"]}
        # the reference is the baseline's float32 .tflite; its accuracy is the model's as uploaded
        assert done["reference"]["format"] == "tflite-float32"
        assert done["reference"]["gzip_bytes"] == variants["tflite-float32"]["gzip_bytes"]
        assert variants["uploaded"]["accuracy"] == pytest.approx(as_saved, abs=1e-9)
        assert done["reference"]["accuracy"] == pytest.approx(as_saved, abs=0.01)
        trials = done["trials"]
        assert sorted(t["recipe"]["chain"] for t in trials) == sorted(SPACE["chains"])
        assert all(t["state"] == "complete" and t["run_status"] == "succeeded" for t in trials), trials
        for t in trials:
            run = ob.get_run(t["run_id"])
            assert run["spec"]["model"]["init_from_run_id"] == base_id and run["spec"]["model"]["upload_id"] is None
            assert t["values"]["gzip_bytes"] == run["headline"]["gzip_bytes"]
    finally:
        ob.close()
