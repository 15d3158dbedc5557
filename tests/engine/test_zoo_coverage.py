"""The coverage harness (worker.engine.coverage, bench/zoo_coverage.py) at its tiniest scale:
on MobileNetV3Small the preflight's prediction matches the outcome of int8 PTQ (its hard-swish
TFOpLambda add/multiply ops have int8 kernels) and of QAT (tfmot's registry refuses TFOpLambda,
and the preflight says so before any compute)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from worker.engine.coverage import Source, cover, totals  # noqa: E402

BASE = {
    "dataset": {"name": "digits", "limit_train": 64, "limit_test": 20, "validation_split": 0.0},
    "training": {"epochs": 1, "batch_size": 32},
    "measurement": {"latency_runs": 10, "warmup_runs": 0, "throughput_batch": 4},
    "export_options": {"representative_samples": 8},
}


def test_the_preflight_predicts_each_outcome(tmp_path: Path) -> None:
    source = Source(
        "mobilenet_v3_small",
        architecture={"architecture": "mobilenet_v3_small", "width_multiplier": 0.35, "input_size": 32},
    )
    result = cover(source, BASE, tmp_path, techniques=("int8_ptq", "qat"))
    ptq, qat = result.outcomes["int8_ptq"], result.outcomes["qat"]
    assert (ptq.predicted, ptq.ok) == (True, True), ptq.error
    assert (qat.predicted, qat.ok) == (False, False)
    assert qat.reason is not None and "TFOpLambda" in qat.reason  # the preflight named the layers
    assert qat.error is not None and "TFOpLambda" in qat.error  # and tfmot refused those
    summary = totals([result])
    assert summary["int8_ptq"]["share"] == 1.0 and summary["qat"]["share"] == 0.0
    assert all(t["surprises"] == 0 and t["false_alarms"] == 0 for t in summary.values())


def test_a_source_is_an_architecture_or_a_file() -> None:
    import pytest

    with pytest.raises(ValueError, match="exactly one"):
        Source("both", architecture={"architecture": "resnet50"}, model_file="m.keras")


def test_uploaded_user_models_go_the_upload_way_with_no_surprises(tmp_path: Path) -> None:
    """The coverage of an uploaded model follows the product's path: the sandbox's preflight with
    the tf-keras copy of a Keras 3 model, then runs through model.upload_id. A Keras 3 model with
    a nested block takes QAT (the copy is flat) and pruning, as the preflight predicts."""
    from bench.user_models import nested_keras3

    path = tmp_path / "nested.keras"
    nested_keras3(path)
    base = {
        "dataset": {"name": "digits", "limit_train": 120, "limit_test": 60, "validation_split": 0.0},
        "training": {"epochs": 1, "batch_size": 32},
        "measurement": {"latency_runs": 10, "warmup_runs": 1, "throughput_batch": 4, "protocol": "quick"},
        "export_options": {"representative_samples": 20},
    }
    result = cover(Source("nested", upload_file=str(path)), base, tmp_path, techniques=("pruning", "qat"))
    assert result.preflight["qat"]["status"] == "fix" and "flattened" in result.preflight["qat"]["reason"]
    for name, outcome in result.outcomes.items():
        assert outcome.predicted and outcome.ok, (name, outcome.error)
