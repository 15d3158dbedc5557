"""The model zoo in the run spec and the API's pre-checks, without TensorFlow (runspec.zoo)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.dispatch.submission import BUILTIN_SIZES, dataset_problems
from runspec.architectures import check_spec_semantics, model_params
from runspec.spec import ModelSpec, RunSpec, techniques_summary
from runspec.zoo import imagenet_weights_file, keras_models_dir


def test_weights_files_are_the_names_keras_get_file_uses() -> None:
    # tf_keras/src/applications/{mobilenet_v2,mobilenet_v3,efficientnet,resnet}.py, include_top=False
    assert imagenet_weights_file("mobilenet_v2", 0.35, 96) == (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
    )
    # another size loads the 224 file, as Keras does
    assert imagenet_weights_file("mobilenet_v2", 1.0, 100).endswith("_1.0_224_no_top.h5")
    assert (
        imagenet_weights_file("mobilenet_v3_small", 0.75, 96)
        == "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5"
    )
    assert imagenet_weights_file("efficientnet_b0", 1.0, 96) == "efficientnetb0_notop.h5"
    assert imagenet_weights_file("resnet50", 1.0, 96) == "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


def test_the_cache_folder_follows_keras_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_models_dir() == tmp_path / "models"
    monkeypatch.delenv("KERAS_HOME")
    assert keras_models_dir() == Path.home() / ".keras" / "models"


def test_published_alphas_only_with_imagenet_weights() -> None:
    assert ModelSpec(architecture="mobilenet_v3_small", weights="imagenet", width_multiplier=0.75)
    assert ModelSpec(architecture="mobilenet_v3_small", width_multiplier=0.35)  # random weights: any alpha
    with pytest.raises(ValidationError, match="only at width_multiplier \\(alpha\\) 0.75, 1"):
        ModelSpec(architecture="mobilenet_v3_small", weights="imagenet", width_multiplier=0.5)
    with pytest.raises(ValidationError, match="width_multiplier applies only when architecture is"):
        ModelSpec(architecture="efficientnet_b0", width_multiplier=0.5)


def test_zoo_models_take_any_image_size_but_not_flat_features() -> None:
    spec = RunSpec.model_validate({"model": {"architecture": "mobilenet_v2", "input_size": 32}})
    assert dataset_problems(spec, BUILTIN_SIZES["digits"], what="digits") == []  # 8x8 is resized to 32x32
    flat = {**BUILTIN_SIZES["digits"], "input_shape": [64]}
    assert [f for f, _ in dataset_problems(spec, flat, what="u")] == [("model", "architecture")]
    imagenet = RunSpec.model_validate({"model": {"architecture": "resnet50", "weights": "imagenet"}})
    four = {**BUILTIN_SIZES["cifar10"], "input_shape": [32, 32, 4]}
    assert [f for f, _ in dataset_problems(imagenet, four, what="u")] == [("model", "weights")]


def test_distillation_arithmetic_uses_the_zoo_table_where_it_can() -> None:
    distil = [{"name": "distillation", "teacher_run_id": 1}]
    resnet = ModelSpec(architecture="resnet50")
    # a seed CNN student of a ResNet50 teacher: smaller, accepted
    assert check_spec_semantics(RunSpec.model_validate({"techniques": distil}), teacher_model=resnet) == []
    # a ResNet50 student of the default seed CNN teacher on CIFAR-10: refused, naming the model
    big = RunSpec.model_validate(
        {"dataset": {"name": "cifar10"}, "model": {"architecture": "resnet50"}, "techniques": distil}
    )
    assert [f for f, _ in check_spec_semantics(big)] == ["model"]
    # grayscale MobileNet at alpha 0.35: the table cannot count it, the check is skipped
    assert model_params(ModelSpec(architecture="mobilenet_v2", width_multiplier=0.35), (28, 28, 1), 10) is None
    small = RunSpec.model_validate(
        {"model": {"architecture": "mobilenet_v2", "width_multiplier": 0.35}, "techniques": distil}
    )
    assert check_spec_semantics(small, teacher_model=resnet) == []
    # clustering arithmetic is per layer of the built-in architectures only
    clus = RunSpec.model_validate(
        {"model": {"architecture": "mobilenet_v2"}, "techniques": [{"name": "clustering", "number_of_clusters": 4096}]}
    )
    assert check_spec_semantics(clus) == []


def test_the_recipe_label_names_size_and_weights() -> None:
    spec = RunSpec.model_validate(
        {"model": {"architecture": "mobilenet_v2", "width_multiplier": 0.5, "input_size": 128, "weights": "imagenet"}}
    )
    assert techniques_summary(spec).startswith("mobilenet_v2 ×0.5 128px imagenet adam")
