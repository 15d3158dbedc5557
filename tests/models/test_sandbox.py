"""The sandbox process itself (backend.dispatch.model_check): its limits hold and nothing it
starts outlives a check. It runs TensorFlow in the child, so it is in the tensorflow tier."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from backend.dispatch.model_check import SandboxChecker
from runspec.modelfile import ModelRefused
from tests.models import files

pytestmark = pytest.mark.tensorflow


def checker(**overrides: float) -> SandboxChecker:
    limits = {"memory_mb": 4096, "cpu_s": 120, "timeout_s": 120.0, "max_expanded_bytes": 64 << 20}
    limits.update(overrides)
    return SandboxChecker(**limits)  # type: ignore[arg-type]


def sandbox_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "upload_check" in " ".join(p.cmdline())]


def test_wall_clock_overrun_is_killed_and_refused(tmp_path: Path) -> None:
    model = files.keras_file(tmp_path / "m.keras", files.sequential(*files.good_layers()))
    started = time.monotonic()
    with pytest.raises(ModelRefused, match="longer than 0.5 s"):
        checker(timeout_s=0.5).check(model, "m.keras")
    assert time.monotonic() - started < 5
    assert sandbox_children() == []


def test_memory_limit_stops_a_model_that_allocates_too_much(tmp_path: Path) -> None:
    layers = files.good_layers()
    layers[0]["config"]["batch_shape"] = [None, 32768]
    layers[1]["config"]["units"] = 32768  # a 4 GiB kernel, allocated when the model is built
    model = files.keras_file(tmp_path / "m.keras", files.sequential(*layers))
    with pytest.raises(ModelRefused) as caught:
        checker(memory_mb=1024).check(model, "m.keras")
    assert caught.value.status == 422
    assert "memory" in str(caught.value).lower() or "MiB" in str(caught.value)
    assert sandbox_children() == []


def test_the_memory_limit_leaves_room_for_tensorflow(tmp_path: Path) -> None:
    from tests.models import keras_models

    keras_models.keras3_nested(tmp_path / "nested.keras")
    preflight = checker(memory_mb=1024).check(tmp_path / "nested.keras", "nested.keras")
    assert preflight["format"] == "keras"


def test_a_broken_weights_file_is_refused_not_crashed(tmp_path: Path) -> None:
    """The hand-made archive's weights member is a stub: the real loader must refuse it."""
    model = files.keras_file(tmp_path / "m.keras", files.sequential(*files.good_layers()))
    with pytest.raises(ModelRefused, match="could not be loaded"):
        checker().check(model, "m.keras")
