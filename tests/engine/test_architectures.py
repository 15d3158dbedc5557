"""runspec.architectures (no TensorFlow) agrees with the Keras models the worker builds."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runspec.architectures import (
    DATASET_SHAPES,
    check_spec_semantics,
    layer_counts,
    param_counts,
    total_params,
)
from runspec.spec import ModelSpec, RegularizationSpec, RunSpec


@pytest.mark.parametrize("architecture", ["seed_cnn", "mlp", "ds_cnn"])
@pytest.mark.parametrize("width", [0.25, 0.45, 1.0, 2.0])
@pytest.mark.parametrize("dataset", ["digits", "fashion_mnist", "cifar10"])
def test_counts_match_keras(architecture: str, width: float, dataset: str) -> None:
    from worker.engine.models import build_model

    spec = ModelSpec(architecture=architecture, width_multiplier=width)
    shape, classes = DATASET_SHAPES[dataset]
    model = build_model(spec, shape, classes, RegularizationSpec(dropout=0.2, l2=1e-4))
    counts = layer_counts(spec, shape, classes)
    assert sum(c.total for c in counts) == model.count_params()
    for c in counts:  # per layer too, by the layer names the worker uses
        assert model.get_layer(c.name).count_params() == c.total, c.name


def test_param_counts_by_spec() -> None:
    spec = RunSpec.model_validate({"dataset": {"name": "fashion_mnist"}})
    counts = param_counts(spec)
    assert counts is not None and counts["conv1"] == 3 * 3 * 1 * 32 + 32
    assert sum(counts.values()) == 241_546  # the seed CNN on 28x28: 971 KB as float32 .tflite
    upload = RunSpec.model_validate({"dataset": {"name": "upload", "upload_id": 3}})
    assert param_counts(upload) is None


def test_too_many_clusters_is_refused() -> None:
    spec = RunSpec.model_validate({"techniques": [{"name": "clustering", "number_of_clusters": 4096}]})
    errors = check_spec_semantics(spec)
    assert errors and errors[0][0] == "techniques.0.number_of_clusters"
    assert "conv1" in errors[0][1] and "288" in errors[0][1]
    ok = RunSpec.model_validate({"techniques": [{"name": "clustering", "number_of_clusters": 16}]})
    assert check_spec_semantics(ok) == []


def test_student_must_be_smaller_than_teacher() -> None:
    distill = [{"name": "distillation", "teacher_run_id": 1}]
    same = RunSpec.model_validate({"techniques": distill})
    errors = check_spec_semantics(same)
    assert errors and errors[0][0] == "model" and "not smaller" in errors[0][1]
    small = RunSpec.model_validate({"model": {"width_multiplier": 0.5}, "techniques": distill})
    assert check_spec_semantics(small) == []
    big_teacher = ModelSpec(width_multiplier=2.0)
    assert check_spec_semantics(same, teacher_model=big_teacher) == []
    assert total_params(ModelSpec(width_multiplier=0.45), "fashion_mnist") <= 0.25 * total_params(
        ModelSpec(), "fashion_mnist"
    )


def test_api_side_modules_import_no_tensorflow() -> None:
    code = (
        "import sys, runspec.architectures, runspec.spec, runspec.npz, "
        "worker.engine.contract; bad = [m for m in ('tensorflow', 'tf_keras') "
        "if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
