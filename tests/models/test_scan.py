"""The static scan of uploaded model files (runspec.modelfile), without TensorFlow: every
refusal names the member or layer at fault, and what Keras writes passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runspec.modelfile import (
    KERAS,
    KERAS3,
    MAX_CONFIG_TOKENS,
    TF_KERAS,
    TFLITE,
    ModelRefused,
    json_tokens,
    model_limits,
    scan_model_file,
)
from tests.models import files

LIMITS = model_limits(64 << 20)


def refusal(path: Path, filename: str | None = None) -> ModelRefused:
    with pytest.raises(ModelRefused) as caught:
        scan_model_file(path, filename or path.name, LIMITS)
    return caught.value


def test_a_plain_sequential_config_passes_and_names_its_flavour(tmp_path: Path) -> None:
    result = scan_model_file(
        files.keras_file(tmp_path / "m.keras", files.sequential(*files.good_layers())), "m.keras", LIMITS
    )
    assert (result.format, result.keras_flavour, result.model_class) == (KERAS, KERAS3, "Sequential")
    assert result.layers == ["InputLayer", "Dense", "Dense"]
    tf_keras = files.keras_file(
        tmp_path / "t.keras", files.sequential(*files.good_layers()), metadata={"keras_version": "2.21.0"}
    )
    assert scan_model_file(tf_keras, "t.keras", LIMITS).keras_flavour == TF_KERAS


@pytest.mark.parametrize(
    ("hostile", "expected"),
    [
        (
            files.layer("Lambda", "evil", {"function": {"class_name": "__lambda__", "config": {"code": "..."}}}),
            "Lambda",
        ),
        (files.layer("TFSMLayer", "evil", {"filepath": "/srv/other_model"}), "TFSMLayer"),
        ({**files.layer("Dense", "evil", {"units": 2}), "module": "os"}, "'os'"),
        ({**files.layer("Dense", "evil", {"units": 2}), "registered_name": "Custom>Dense"}, "custom object"),
        (files.layer("MyLayer", "evil", module="my_package.layers"), "my_package.layers"),
        (
            files.layer(
                "Dense", "evil", {"units": 2, "activation": {"module": "builtins", "class_name": "exec", "config": "x"}}
            ),
            "builtins",
        ),
        (files.layer("Dense", "evil", {"units": 2, "activation": "os.system"}), "os.system"),
        (
            files.layer("Dense", "evil", {"units": 2, "activation": {"class_name": "function", "config": "f"}}),
            "function reference",
        ),
    ],
)
def test_a_hostile_layer_is_refused_naming_its_index_and_class(tmp_path: Path, hostile: dict, expected: str) -> None:
    layers = files.good_layers()
    layers.insert(2, hostile)
    exc = refusal(files.keras_file(tmp_path / "h.keras", files.sequential(*layers)))
    assert exc.loc[:3] == ("config.json", "layers", 2), exc.loc
    assert expected in str(exc) and exc.status == 422


def test_a_hostile_layer_inside_a_nested_model_is_located_in_it(tmp_path: Path) -> None:
    inner = files.sequential(*files.good_layers()[1:], files.layer("Lambda", "evil"), name="block")
    config = files.sequential(*files.good_layers()[:1], inner)
    exc = refusal(files.keras_file(tmp_path / "n.keras", config))
    assert exc.loc == ("config.json", "layers", 1, "layers", 2) and "Lambda" in str(exc)


def test_a_nested_model_of_keras_layers_passes_flattened(tmp_path: Path) -> None:
    inner = files.sequential(*files.good_layers()[1:], name="block")
    result = scan_model_file(
        files.keras_file(tmp_path / "n.keras", files.sequential(files.good_layers()[0], inner)), "n.keras", LIMITS
    )
    assert result.layers == ["InputLayer", "Dense", "Dense"]


def test_a_subclassed_model_is_refused_with_the_reason(tmp_path: Path) -> None:
    config = {"module": "__main__", "class_name": "MyModel", "config": {}, "registered_name": "MyModel"}
    exc = refusal(files.keras_file(tmp_path / "s.keras", config))
    assert exc.loc == ("config.json", "class_name") and "subclassed" in str(exc)


def test_hdf5_is_refused_with_why_and_how_to_resave(tmp_path: Path) -> None:
    exc = refusal(files.hdf5_file(tmp_path / "m.h5"))
    assert "safe_mode" in str(exc) and 'model.save("m.keras")' in str(exc)
    exc = refusal(files.hdf5_file(tmp_path / "m.weights.h5"))
    assert "architecture" in str(exc)
    # the bytes decide, not the name: HDF5 renamed .keras is still HDF5
    assert "CVE-2025-9905" in str(refusal(files.hdf5_file(tmp_path / "renamed.keras")))


def test_tflite_is_recognised_by_its_identifier(tmp_path: Path) -> None:
    assert scan_model_file(files.tflite_like(tmp_path / "m.tflite"), "m.tflite", LIMITS).format == TFLITE
    assert "not a model file" in str(refusal(files.tflite_like(tmp_path / "bad.tflite", b"XXXX")))


@pytest.mark.parametrize(
    ("make", "expected", "status"),
    [
        (files.zip_slip_keras, "'..' segment", 422),
        (files.symlink_keras, "symbolic link", 422),
    ],
)
def test_hostile_archives_are_refused_before_extraction(tmp_path: Path, make, expected: str, status: int) -> None:  # type: ignore[no-untyped-def]
    exc = refusal(make(tmp_path / "z.keras"))
    assert expected in str(exc) and exc.status == status


def test_a_zip_bomb_is_refused_from_its_directory(tmp_path: Path) -> None:
    bomb = files.zip_bomb_keras(tmp_path / "bomb.keras", expanded_bytes=3 * 10**9)
    assert bomb.stat().st_size < 5 * 2**20
    exc = refusal(bomb)
    assert exc.status == 413 and "expands to more than" in str(exc)


def test_unexpected_members_and_versions_are_refused(tmp_path: Path) -> None:
    path = files.keras_file(tmp_path / "x.keras", files.sequential(*files.good_layers()))
    import zipfile

    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("payload.py", b"import os")
    assert refusal(path).loc == ("payload.py",)
    odd = files.keras_file(
        tmp_path / "v.keras", files.sequential(*files.good_layers()), metadata={"keras_version": "9"}
    )
    assert refusal(odd).loc == ("metadata.json", "keras_version")


def test_an_empty_file_is_refused_as_empty(tmp_path: Path) -> None:
    empty = tmp_path / "model.keras"
    empty.write_bytes(b"")
    with pytest.raises(ModelRefused, match=r"the file is empty \(0 bytes\)"):
        scan_model_file(empty, "model.keras", LIMITS)


@pytest.mark.parametrize("how", ["crc", "deflate"])
def test_a_member_that_cannot_be_read_back_is_refused_naming_it(tmp_path: Path, how: str) -> None:
    exc = refusal(files.corrupt_member_keras(tmp_path / "c.keras", how))
    assert exc.status == 422 and exc.loc == ("config.json",)
    assert "cannot be read from the archive" in str(exc)


def test_json_that_would_build_too_many_objects_is_refused_before_parsing(tmp_path: Path) -> None:
    bomb = files.exploding_keras(tmp_path / "x.keras", config_bytes=15 << 20)
    assert bomb.stat().st_size < 400_000  # small on the wire, not a ratio bomb either
    exc = refusal(bomb)
    assert exc.status == 422 and exc.loc == ("config.json",)
    assert f"at most {MAX_CONFIG_TOKENS:,} are parsed" in str(exc)
    # every string is skipped, escaped quotes and backslashes included
    assert json_tokens(b'{"a": "[,:{", "b\\\\": ["\\"[,", 1]}') == 6  # { : , : [ ,


def test_a_real_keras_applications_config_is_far_under_the_value_bound() -> None:
    # ResNet152 writes 52,385 and EfficientNetB7 81,192 (measured with keras.applications)
    layers = [files.layer("Dense", f"d{i}", {"units": 4}) for i in range(800)]
    raw = json.dumps(files.sequential(*layers)).encode()
    assert json_tokens(raw) < MAX_CONFIG_TOKENS / 50
