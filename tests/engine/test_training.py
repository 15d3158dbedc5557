"""Base training on digits: the default recipe, metric keys, progress, schedules, failures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from worker.engine.contract import Cancelled, TrainingDiverged

EPOCH_KEYS = {"train_loss", "train_accuracy", "lr", "epoch", "val_loss", "val_accuracy"}


def test_default_recipe_reaches_090_on_digits(teacher) -> None:
    _, rep, summary = teacher
    keras_v, f32 = rep.variant("keras"), rep.variant("tflite-float32")
    assert keras_v.accuracy >= 0.9 and f32.accuracy >= 0.9
    # the TFLite model is measured on its own, not copied from Keras
    assert f32.path.suffix == ".tflite" and f32.latency_p50_ms is not None
    assert abs(f32.accuracy - keras_v.accuracy) < 0.02
    assert summary.epochs_done == 3 and summary.train_seconds > 0
    assert summary.peak_memory_bytes > 100 * 2**20 and not summary.stopped_early
    assert sum(sum(row) for row in f32.confusion) == f32.extra["test_examples"] == 450
    assert 0 < f32.f1 <= 1 and 0 < f32.precision <= 1 and 0 < f32.recall <= 1
    assert f32.size_bytes == f32.path.stat().st_size and f32.gzip_bytes < f32.size_bytes
    assert f32.hardware["tensorflow"] and f32.hardware["cpu_count"]


def test_metric_points_follow_the_global_step(teacher) -> None:
    _, rep, _ = teacher
    keys = {k for k, _, _ in rep.points}
    assert {"loss", "accuracy", "phase"} | EPOCH_KEYS <= keys
    steps = [s for s, _ in rep.series("loss")]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert steps[0] == 10  # log_every_n_batches defaults to 10
    epochs = rep.series("epoch")
    assert [v for _, v in epochs] == [1.0, 2.0, 3.0]
    spe = math.ceil(1212 / 32)  # 90 % of the 1347 digits training images, batch 32
    assert [s for s, _ in epochs] == [spe, 2 * spe, 3 * spe]
    losses = [v for _, v in rep.series("loss")]
    assert losses[-1] < losses[0]
    assert rep.progress_calls and all(0 <= f <= 1 for f, _ in rep.progress_calls)
    assert rep.progress_calls[-1][0] == 1.0


def test_keras_variant_loads_in_safe_mode(teacher) -> None:
    from worker.engine.tfsetup import keras

    _, rep, _ = teacher
    path = rep.variant("keras").path
    assert path.suffix == ".keras"
    model = keras.models.load_model(path, safe_mode=True, compile=False)
    assert model.count_params() == rep.variant("keras").params


def test_schedule_regularization_and_early_stopping(tmp_path: Path, run, digits_spec) -> None:
    spec = digits_spec(
        training={
            "epochs": 4,
            "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True, "clipnorm": 1.0},
            "schedule": {"name": "cosine", "warmup_epochs": 1},
            "regularization": {"l1": 1e-5, "l2": 1e-4, "dropout": 0.2, "label_smoothing": 0.1},
            "early_stopping": {"patience": 1, "min_delta": 10.0},  # nothing improves by 10: stops
            "pipeline": {"steps_per_execution": 4},
            "log_every_n_batches": 5,
        }
    )
    summary, rep = run(spec, tmp_path)
    assert summary.stopped_early and summary.epochs_done == 2
    lrs = [v for _, v in rep.series("lr")]
    # the rate of the epoch's last batch: near the end of the linear warm-up to 0.05
    assert 0.04 < lrs[0] < 0.05
    assert lrs[1] < lrs[0]  # cosine decay after warm-up
    assert rep.variant("keras").accuracy > 0.2  # best (first, warm-up) epoch restored; chance is 0.1


def test_cancel_raises_and_keeps_points(tmp_path: Path, run, digits_spec, make_reporter) -> None:
    rep = make_reporter(stop_after_points=6)
    with pytest.raises(Cancelled):
        run(digits_spec(exports=["float32"]), tmp_path, reporter=rep)
    assert len(rep.series("loss")) >= 2 and not rep.variants
    assert max(s for _, s, _ in rep.points) < math.ceil(1212 / 32) * 3  # stopped early on


def test_divergence_is_logged_as_nan_then_fails(tmp_path: Path, run, digits_spec, make_reporter) -> None:
    rep = make_reporter()
    spec = digits_spec(
        training={"optimizer": {"name": "sgd", "learning_rate": 10.0, "momentum": 0.9}, "log_every_n_batches": 50}
    )
    with pytest.raises(TrainingDiverged, match="training diverged"):
        run(spec, tmp_path, reporter=rep)
    nan_points = rep.nan_points()
    assert nan_points and {k for k, _, _ in nan_points} >= {"loss"}
    # the NaN point is logged at the step where it happened, before the next log interval
    assert nan_points[0][1] < 50 and not rep.variants
    assert np.isnan(nan_points[0][2]) or np.isinf(nan_points[0][2])
