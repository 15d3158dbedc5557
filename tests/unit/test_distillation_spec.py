"""The spec side of consistent distillation: augmentation and mixup options, T and α schedules,
teacher checkpoints (which epochs a teacher keeps, how the worker stores and finds them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.dispatch.submission import kept_checkpoint_epochs
from runspec.spec import MAX_CHECKPOINTS, DistillationSpec, RunSpec, scheduled_value
from worker.execution import checkpoint_path, store_checkpoints


def _error_field(exc: ValidationError) -> str:
    """The field a SpecError names (what the API appends to the 422's location)."""
    err = exc.errors()[0]
    return getattr(err.get("ctx", {}).get("error"), "field", "") or ".".join(map(str, err["loc"]))


def test_augmentation_and_mixup_are_off_by_default_and_training_options() -> None:
    t = RunSpec().training
    assert t.augmentation.shift == 0 and not t.augmentation.horizontal_flip and not t.augmentation.enabled
    assert t.mixup_alpha == 0 and t.checkpoint_every_epochs is None
    on = RunSpec.model_validate({"training": {"augmentation": {"shift": 0.1}, "mixup_alpha": 0.2}}).training
    assert on.augmentation.enabled and on.mixup_alpha == 0.2
    assert "not digits" in type(t.augmentation).model_fields["horizontal_flip"].description


@pytest.mark.parametrize(
    ("training", "field"),
    [
        ({"augmentation": {"shift": 0.6}}, "shift"),
        ({"augmentation": {"rotate": 10}}, "rotate"),
        ({"mixup_alpha": -0.1}, "mixup_alpha"),
        ({"checkpoint_every_epochs": 0}, "checkpoint_every_epochs"),
    ],
)
def test_bad_training_options_name_their_field(training: dict, field: str) -> None:
    with pytest.raises(ValidationError) as e:
        RunSpec.model_validate({"training": training})
    assert field in _error_field(e.value)


def test_linear_and_cosine_schedules_go_from_start_to_end() -> None:
    assert [scheduled_value(4, 1, "linear", e, 4) for e in range(4)] == [4, 3, 2, 1]
    cosine = [scheduled_value(4, 1, "cosine", e, 5) for e in range(5)]
    assert cosine[0] == 4 and cosine[-1] == pytest.approx(1) and cosine[2] == pytest.approx(2.5)
    assert all(a > b for a, b in zip(cosine, cosine[1:], strict=False))  # monotone
    # half a cosine wave: slow at both ends, fast in the middle
    assert cosine[0] - cosine[1] < cosine[1] - cosine[2]
    assert scheduled_value(4, 1, "constant", 3, 4) == 4
    assert scheduled_value(4, 1, "linear", 0, 1) == 4  # one epoch: the start value


def test_distillation_spec_schedules_and_their_validation() -> None:
    d = DistillationSpec(
        name="distillation", teacher_run_id=1, alpha=0.5, alpha_schedule="linear", alpha_end=0.0, temperature=3.0
    )
    assert [d.alpha_at(e, 3) for e in range(3)] == [0.5, 0.25, 0.0]
    assert [d.temperature_at(e, 3) for e in range(3)] == [3.0, 3.0, 3.0]
    with pytest.raises(ValidationError) as e:
        DistillationSpec(name="distillation", teacher_run_id=1, temperature_schedule="cosine")
    assert _error_field(e.value) == "temperature_end" and "required" in str(e.value)
    with pytest.raises(ValidationError) as e:
        DistillationSpec(name="distillation", teacher_run_id=1, alpha_end=0.2)  # constant: would be ignored
    assert _error_field(e.value) == "alpha_end"
    with pytest.raises(ValidationError) as e:
        DistillationSpec(name="distillation", teacher_run_id=1, teacher_epoch=0)
    assert "teacher_epoch" in _error_field(e.value)


def test_a_teacher_keeps_every_nth_epoch_and_at_most_the_latest_max() -> None:
    spec = RunSpec.model_validate({"training": {"epochs": 10, "checkpoint_every_epochs": 3}})
    assert kept_checkpoint_epochs(spec) == [3, 6, 9]
    assert kept_checkpoint_epochs(RunSpec()) == []
    long = RunSpec.model_validate({"training": {"epochs": 100, "checkpoint_every_epochs": 1}})
    assert kept_checkpoint_epochs(long) == list(range(100 - MAX_CHECKPOINTS + 1, 101))


def test_checkpoints_are_stored_with_their_hash_and_found_by_epoch(tmp_path: Path) -> None:
    work, root = tmp_path / "work", tmp_path / "artifacts"
    work.mkdir()
    (work / "epoch-2.keras").write_bytes(b"two")
    (work / "epoch-10.keras").write_bytes(b"ten")
    manifest = store_checkpoints(work, root, 7)
    assert sorted(manifest, key=int) == ["2", "10"]
    assert json.loads((root / "runs/7/checkpoints/manifest.json").read_text()) == manifest
    assert checkpoint_path(root, 7, 10).read_bytes() == b"ten"
    with pytest.raises(ValueError, match="kept no checkpoint after epoch 3; it kept epochs 2, 10"):
        checkpoint_path(root, 7, 3)
    with pytest.raises(ValueError, match="run 8 kept no checkpoints"):
        checkpoint_path(root, 8, 2)
    (root / "runs/7/checkpoints/epoch-2.keras").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="missing or damaged"):
        checkpoint_path(root, 7, 2)
    assert store_checkpoints(tmp_path / "none", root, 9) == {}  # a run without checkpoints stores nothing
    assert not (root / "runs/9").exists()


def test_augmentation_on_flat_inputs_is_refused_at_submit_naming_the_field() -> None:
    from backend.dispatch.submission import dataset_problems

    info = {"input_shape": [64], "train_examples": 100, "test_examples": 20, "classes": 3}
    flat = RunSpec.model_validate(
        {"model": {"architecture": "mlp"}, "training": {"augmentation": {"shift": 0.1}, "mixup_alpha": 0.2}}
    )
    problems = dataset_problems(flat, info, what="dataset 1")
    assert [field for field, _ in problems] == [("training", "augmentation")]
    assert "64 features" in problems[0][1]
    mixup_only = RunSpec.model_validate({"model": {"architecture": "mlp"}, "training": {"mixup_alpha": 0.2}})
    assert dataset_problems(mixup_only, info, what="dataset 1") == []
    images = {**info, "input_shape": [8, 8]}
    assert dataset_problems(flat.model_copy(update={"model": RunSpec().model}), images, what="d") == []
