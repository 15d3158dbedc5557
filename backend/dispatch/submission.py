"""Submitting runs: checks that need the database, the row, the commit, then the job.

The job is sent only after the commit that created the row, so a worker can never receive an
id it cannot read. If the broker is down the run stays queued with no task id and the
dispatcher in the API's background loop sends it later: nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from backend.core.errors import Invalid, Problem
from backend.dispatch.outage import BROKER as OUTAGE
from backend.dispatch.queue import JobQueue
from backend.store import datasets, runs, uploaded_models, variants
from backend.store.records import RunRecord
from runspec.architectures import check_spec_semantics
from runspec.controls import control_spec
from runspec.groups import seed_repeats
from runspec.modelfile import KERAS3, SAVED_MODEL, TFLITE
from runspec.spec import MAX_CHECKPOINTS, DatasetSpec, DistillationSpec, ModelSpec, RunSpec
from runspec.zoo import ZOO

log = logging.getLogger(__name__)


def _finished_model(session: Session, run_id: int) -> str | None:
    """None if the run has a stored Keras model to start from, else why not."""
    run = runs.get_run(session, run_id=run_id)
    if run is None:
        return f"run {run_id} does not exist"
    if run.status != "succeeded":
        return f"run {run_id} is {run.status}, not a finished (succeeded) run"
    if not any(v.format == "keras" for v in variants.list_variants(session, run_ids=[run_id])):
        return f"run {run_id} has no stored Keras model"
    return None


def kept_checkpoint_epochs(spec: RunSpec) -> list[int]:
    """The epochs after which a run of `spec` keeps a checkpoint when its base training runs all
    its epochs: every training.checkpoint_every_epochs-th, the latest MAX_CHECKPOINTS of them."""
    every = spec.training.checkpoint_every_epochs
    if not every:
        return []
    return list(range(every, spec.training.epochs + 1, every))[-MAX_CHECKPOINTS:]


def _checkpoint_problem(teacher: RunSpec, run_id: int, epoch: int) -> str | None:
    """None if the teacher's spec kept a checkpoint after `epoch`, else why not (an early-stopped
    teacher may still lack it: the job then fails naming the epochs it kept)."""
    kept = kept_checkpoint_epochs(teacher)
    if not kept:
        return (
            f"teacher run {run_id} kept no checkpoints: it was trained without training.checkpoint_every_epochs "
            "(leave teacher_epoch out to distil from its final model)"
        )
    if epoch not in kept:
        listed = ", ".join(map(str, kept)) if len(kept) <= 12 else f"{kept[0]}, {kept[1]}, …, {kept[-1]}"
        return f"teacher run {run_id} kept no checkpoint after epoch {epoch}; it kept epochs {listed}"
    return None


def _dataset_dims(session: Session, dataset: DatasetSpec) -> tuple[tuple[int, ...], int] | None:
    """(per-example input shape as the model sees it, classes) of a dataset; None if unknown."""
    if dataset.name == "upload":
        record = datasets.get_dataset(session, dataset_id=dataset.upload_id) if dataset.upload_id else None
        info = record.info if record is not None else {}
    else:
        info = BUILTIN_SIZES.get(dataset.name, {})
    if "input_shape" not in info or "classes" not in info:
        return None
    shape = tuple(int(d) for d in info["input_shape"])
    return (shape + (1,) if len(shape) == 2 else shape), int(info["classes"])


def _model_fits_data(session: Session, run_id: int, spec: RunSpec, role: str) -> str | None:
    """Why the finished run's model cannot take this spec's dataset (input shape or classes),
    or None; the same check the worker makes when it loads the model (job._check_input)."""
    run = runs.get_run(session, run_id=run_id)
    if run is None:
        return None
    try:
        theirs = _dataset_dims(session, RunSpec.model_validate(run.spec).dataset)
    except ValueError:
        return None
    ours = _dataset_dims(session, spec.dataset)
    if theirs is None or ours is None or theirs == ours:
        return None
    return (
        f"{role} run {run_id} was trained on inputs {theirs[0]} with {theirs[1]} classes, but this run's "
        f"dataset has inputs {ours[0]} with {ours[1]} classes"
    )


def reference_problems(session: Session, spec: RunSpec, loc: tuple[Any, ...] = ("body",)) -> list[Problem]:
    problems: list[Problem] = []
    teacher_model: ModelSpec | None = None
    for i, t in enumerate(spec.techniques):
        if isinstance(t, DistillationSpec):
            why = _finished_model(session, t.teacher_run_id)
            why = f"teacher {why}" if why else _model_fits_data(session, t.teacher_run_id, spec, "the teacher")
            if why:
                problems.append(((*loc, "techniques", i, "teacher_run_id"), why))
            else:
                teacher = runs.get_run(session, run_id=t.teacher_run_id)
                if teacher is not None:
                    teacher_spec = RunSpec.model_validate(teacher.spec)
                    teacher_model = teacher_spec.model
                    if t.teacher_epoch is not None:
                        why = _checkpoint_problem(teacher_spec, t.teacher_run_id, t.teacher_epoch)
                        if why:
                            problems.append(((*loc, "techniques", i, "teacher_epoch"), why))
    if spec.kind == "optimize" and spec.parent_run_id is not None:
        why = _finished_model(session, spec.parent_run_id)
        why = f"parent {why}" if why else _model_fits_data(session, spec.parent_run_id, spec, "the parent")
        if why:
            problems.append(((*loc, "parent_run_id"), why))
    if spec.model.init_from_run_id is not None:
        why = _finished_model(session, spec.model.init_from_run_id)
        why = (
            f"starting point {why}"
            if why
            else _model_fits_data(session, spec.model.init_from_run_id, spec, "the starting")
        )
        if why:
            problems.append(((*loc, "model", "init_from_run_id"), why))
    if spec.model.upload_id is not None:
        problems += uploaded_model_problems(session, spec, loc)
    upload_dims = None  # ((H, W, C), classes) of an image upload, for the architecture arithmetic
    arithmetic = spec.model.upload_id is None  # an uploaded model's layers are its own
    if spec.dataset.name == "upload" and spec.dataset.upload_id is not None:
        record = datasets.get_dataset(session, dataset_id=spec.dataset.upload_id)
        if record is None:
            problems.append(((*loc, "dataset", "upload_id"), f"dataset {spec.dataset.upload_id} does not exist"))
            arithmetic = False
        else:
            fit = dataset_problems(spec, record.info, what=f"dataset {record.id} ({record.name})")
            problems += [((*loc, *field), msg) for field, msg in fit]
            upload_dims = upload_shape(record.info)
            arithmetic = arithmetic and upload_dims is not None and not any(field[0] == "model" for field, _ in fit)
    elif spec.dataset.name in BUILTIN_SIZES:
        problems += [
            ((*loc, *field), msg)
            for field, msg in dataset_problems(spec, BUILTIN_SIZES[spec.dataset.name], what=spec.dataset.name)
        ]
    for path, msg in check_spec_semantics(spec, teacher_model=teacher_model, dataset=upload_dims) if arithmetic else []:
        parts = tuple(int(p) if p.isdigit() else p for p in str(path).split("."))
        problems.append(((*loc, *parts), msg))
    return problems


# The preflight's technique keys (worker.engine.preflight.TECHNIQUES) of the spec's techniques.
PREFLIGHT_KEYS = {"pruning": "prune", "qat": "qat", "clustering": "cluster"}


def fits_input(model_input: Sequence[Any], data_input: Sequence[int]) -> bool:
    """Whether a model taking per-example inputs `model_input` runs on a dataset whose examples
    are `data_input`: equal, or (H, W) against (H, W, 1) images (the worker drops the channel
    axis: worker.engine.uploaded.fit_data)."""
    want, have = tuple(model_input), tuple(data_input)
    return want == have or (len(have) == len(want) + 1 and have[-1] == 1 and want == have[:-1])


def uploaded_model_problems(session: Session, spec: RunSpec, loc: tuple[Any, ...] = ("body",)) -> list[Problem]:
    """What the spec cannot do with the uploaded model it names (`model.upload_id`), from the
    model's stored preflight: a missing model, a format that cannot train (a .tflite file is
    measured only; a SavedModel is converted and measured), a Keras 3 model without a faithful
    tf-keras copy, a technique or int8 export the preflight found unsupported (with its reason),
    and a dataset whose input shape or class count the model does not take."""
    model_id = spec.model.upload_id
    field = (*loc, "model", "upload_id")
    record = uploaded_models.get_model(session, model_id=model_id) if model_id is not None else None
    if record is None:
        return [(field, f"model {model_id} does not exist")]
    what = f"model {record.id} ({record.name})"
    preflight = record.preflight
    problems: list[Problem] = []
    inputs, outputs = preflight.get("inputs") or [], preflight.get("outputs") or []
    if len(inputs) != 1 or len(outputs) != 1:
        problems.append(
            (
                field,
                f"{what} has {len(inputs)} inputs and {len(outputs)} outputs: optiboard runs models with one of each",
            )
        )
    if record.format in (TFLITE, SAVED_MODEL):
        kind = (
            "a .tflite file, measured as it is" if record.format == TFLITE else "a SavedModel, converted and measured"
        )
        if spec.techniques:
            problems.append(((*loc, "techniques"), f"{what} is {kind}: techniques need a .keras upload"))
        if spec.training.epochs:
            problems.append(((*loc, "training", "epochs"), f"{what} is {kind}: training.epochs must be 0"))
        if record.format == TFLITE and spec.exports:
            problems.append(((*loc, "exports"), f"{what} is {kind}: exports must be empty"))
    else:
        copy = preflight.get("tf_keras_copy")
        if record.keras_flavour == KERAS3 and (not isinstance(copy, dict) or copy.get("status") != "yes"):
            reason = copy.get("reason") if isinstance(copy, dict) else "it was uploaded before copies were made"
            problems.append((field, f"{what} has no faithful tf-keras copy ({reason}): it cannot be run here"))
        verdicts = preflight.get("techniques") or {}
        for i, t in enumerate(spec.techniques):
            verdict = verdicts.get(PREFLIGHT_KEYS.get(t.name, t.name)) or {}
            if verdict.get("status") == "no":
                problems.append(((*loc, "techniques", i), f"{t.name} cannot run on {what}: {verdict.get('reason')}"))
        if "int8" in spec.exports and (verdicts.get("int8") or {}).get("status") == "no":
            problems.append(
                (
                    (*loc, "exports", spec.exports.index("int8")),
                    f"int8 conversion cannot run on {what}: {verdicts['int8'].get('reason')}",
                )
            )
    dims = _dataset_dims(session, spec.dataset)
    if dims is not None and len(inputs) == 1 and len(outputs) == 1:
        dataset_field = (*loc, "dataset", "upload_id" if spec.dataset.name == "upload" else "name")
        shape = [None if d is None else int(d) for d in (inputs[0].get("shape") or [])[1:]]
        if not fits_input(shape, dims[0]):
            problems.append(
                (dataset_field, f"{what} takes inputs of shape {tuple(shape)} but the dataset has {dims[0]}")
            )
        classes = (outputs[0].get("shape") or [None])[-1]
        if classes is not None and int(classes) != dims[1]:
            problems.append((dataset_field, f"{what} has {int(classes)} outputs but the dataset has {dims[1]} classes"))
    return problems


# Layers that do a model's own input scaling (keras.io/guides/preprocessing_layers: "put the
# preprocessing in the model").
SELF_SCALING_LAYERS = ("Rescaling", "Normalization")


def with_resolved_defaults(session: Session, spec: RunSpec) -> RunSpec:
    """`spec` with the defaults that depend on what it names, resolved before it is stored (so
    the stored spec says what ran):

    - `dataset.normalize` left at its default with an uploaded model whose first layer is
      Rescaling or Normalization becomes "none": the model scales its own inputs, and scaling
      them once more (pixels / 255 twice) would measure a model that only sees black images.
      A value the user gave is kept."""
    if spec.model.upload_id is None or "normalize" in spec.dataset.model_fields_set:
        return spec
    record = uploaded_models.get_model(session, model_id=spec.model.upload_id)
    layers = (record.preflight.get("layers") or []) if record is not None else []
    if layers and layers[0].get("class") in SELF_SCALING_LAYERS:
        dataset = spec.dataset.model_copy(update={"normalize": "none"})
        return spec.model_copy(update={"dataset": dataset})
    return spec


# What the API knows of the built-in datasets, in the shape of an upload's info.
BUILTIN_SIZES: dict[str, dict[str, Any]] = {
    "digits": {"train_examples": 1347, "test_examples": 450, "classes": 10, "input_shape": [8, 8]},
    "mnist": {"train_examples": 60000, "test_examples": 10000, "classes": 10, "input_shape": [28, 28]},
    "fashion_mnist": {"train_examples": 60000, "test_examples": 10000, "classes": 10, "input_shape": [28, 28]},
    "cifar10": {"train_examples": 50000, "test_examples": 10000, "classes": 10, "input_shape": [32, 32, 3]},
}
MIN_CNN_IMAGE = 4  # two 2x2 max-pools: smaller images pool to nothing


def upload_shape(info: dict[str, Any]) -> tuple[tuple[int, int, int], int] | None:
    """(H, W, C) and classes of an upload whose examples are images; None for (F,) features."""
    shape = [int(d) for d in info.get("input_shape", [])]
    if len(shape) == 2:
        shape.append(1)
    if len(shape) != 3 or "classes" not in info:
        return None
    return (shape[0], shape[1], shape[2]), int(info["classes"])


def dataset_problems(spec: RunSpec, info: dict[str, Any], *, what: str) -> list[tuple[tuple[str, ...], str]]:
    """What the spec cannot do with the dataset it names, as (field path, message), from the
    dataset's info (counts, classes, shape; `datasets.info` for uploads, BUILTIN_SIZES else).

    Rules (the worker's arithmetic in worker.engine.data.load_data): `limit_train`/`limit_test`
    may not exceed the data; the validation split holds out max(1, round(n x split)) of the n
    training examples, which must leave at least one training example per class; image
    architectures need image-shaped examples of at least 4x4. A batch larger than the training
    set is allowed (one partial batch per epoch, as in Keras).
    """
    d = spec.dataset
    out: list[tuple[tuple[str, ...], str]] = []
    train, test = int(info.get("train_examples", 0)), int(info.get("test_examples", 0))
    classes = int(info.get("classes", 0))
    if d.limit_train is not None and d.limit_train > train:
        out.append(
            (
                ("dataset", "limit_train"),
                f"limit_train {d.limit_train} is more than the {train} training examples of {what}",
            )
        )
    if d.limit_test is not None and d.limit_test > test:
        out.append(
            (("dataset", "limit_test"), f"limit_test {d.limit_test} is more than the {test} test examples of {what}")
        )
    n = min(d.limit_train or train, train)
    held_out = max(1, round(n * d.validation_split)) if d.validation_split > 0 else 0
    left = n - held_out
    if left < 1:
        out.append(
            (
                ("dataset", "validation_split"),
                f"validation_split {d.validation_split} holds out {held_out} of the {n} training examples of "
                f"{what} and leaves none to train on",
            )
        )
    elif left < classes:
        field = (
            "validation_split"
            if held_out and n >= classes
            else ("limit_train" if d.limit_train else ("upload_id" if d.name == "upload" else "name"))
        )
        out.append(
            (
                ("dataset", field),
                f"{left} training example{'s' if left != 1 else ''}{f' after the validation split of {held_out}' if held_out else ''} "
                f"for {classes} classes in {what}: at least one per class is needed",
            )
        )
    shape = info.get("input_shape", [])
    arch = spec.model.architecture
    if spec.training.augmentation.enabled and len(shape) == 1:
        out.append(
            (
                ("training", "augmentation"),
                f"augmentation shifts and flips images, but {what} has {shape[0]} features per example: "
                "leave training.augmentation off (mixup works on any inputs)",
            )
        )
    if spec.model.init_from_run_id is None and spec.model.upload_id is None and arch != "mlp":
        if len(shape) == 1:
            out.append(
                (
                    ("model", "architecture"),
                    f"{arch} needs images, (H, W) or (H, W, C) per example, but {what} has {shape[0]} "
                    "features per example: use the mlp architecture",
                )
            )
        elif len(shape) == 3 and spec.model.weights == "imagenet" and shape[2] not in (1, 3):
            out.append(
                (
                    ("model", "weights"),
                    f"ImageNet weights read 3 channels (grayscale is repeated) but {what} has {shape[2]}",
                )
            )
        elif len(shape) >= 2 and arch not in ZOO and min(shape[0], shape[1]) < MIN_CNN_IMAGE:
            out.append(
                (
                    ("model", "architecture"),
                    f"{arch} needs images of at least {MIN_CNN_IMAGE}x{MIN_CNN_IMAGE} (two 2x2 pools) but {what} "
                    f"has {shape[0]}x{shape[1]}: use the mlp architecture",
                )
            )
    return out


def raise_if_problems(problems: Sequence[Problem]) -> None:
    """Raises `Invalid` (HTTP 422 naming each field) when there is any problem."""
    if problems:
        raise Invalid(problems)


def create_checked(
    session: Session,
    spec: RunSpec,
    *,
    max_attempts: int,
    retry_of_run_id: int | None = None,
    control_of_run_id: int | None = None,
) -> list[RunRecord]:
    """The run for `spec` after the reference checks (raises `Invalid`), flushed; with
    `spec.control`, followed by its same-budget control twin (runspec.controls.control_spec of
    the resolved spec: the same seeds, data and exports), linked through `control_of_run_id`, in
    the same unit of work. Returns [run] or [run, control]. `control_of_run_id` makes the run
    itself a control (the retry of a control stays its run's control)."""
    raise_if_problems(reference_problems(session, spec))
    return _create_with_control(
        session,
        with_resolved_defaults(session, spec),
        max_attempts=max_attempts,
        retry_of_run_id=retry_of_run_id,
        control_of_run_id=control_of_run_id,
    )


def _create_with_control(
    session: Session,
    spec: RunSpec,
    *,
    max_attempts: int,
    retry_of_run_id: int | None = None,
    control_of_run_id: int | None = None,
) -> list[RunRecord]:
    """[the run] for a checked, resolved spec, or [the run, its control] with `spec.control`."""
    run = runs.create_run(
        session,
        spec=spec,
        max_attempts=max_attempts,
        retry_of_run_id=retry_of_run_id,
        control_of_run_id=control_of_run_id,
    )
    if not spec.control:
        return [run]
    twin = runs.create_run(session, spec=control_spec(spec), max_attempts=max_attempts, control_of_run_id=run.id)
    return [run, twin]


def create_repeats(session: Session, spec: RunSpec, *, max_attempts: int) -> list[RunRecord]:
    """The runs a spec asks for (runspec.groups.seed_repeats: `repeats` runs over consecutive
    training seeds, one seed group), checked once and created in seed order, flushed; with
    `control`, each followed by its own control (the same seed: the controls form a seed group
    of their own)."""
    raise_if_problems(reference_problems(session, spec))
    return [
        run
        for one in seed_repeats(spec)
        for run in _create_with_control(session, with_resolved_defaults(session, one), max_attempts=max_attempts)
    ]


def commit_and_enqueue(session: Session, queue: JobQueue, created: Sequence[RunRecord]) -> None:
    session.commit()
    for run in created:
        if run.external:
            continue
        try:
            task_id = queue.enqueue_run(run_id=run.id, kind=run.kind)
        except Exception as e:  # broker unreachable: the dispatcher retries from the database
            OUTAGE.failed(e, f"run {run.id} is stored and queued; the dispatcher will send it")
            continue
        OUTAGE.recovered()
        runs.set_task_id(session, run_id=run.id, task_id=task_id)
    session.commit()
