"""Uploaded models (issue 17): a .keras file (Keras 3 or tf-keras), a SavedModel directory as a
.zip, or a .tflite file, scanned, loaded in a sandbox and preflighted before it is kept."""

from __future__ import annotations

import secrets
import shutil
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile, status

from backend.api import uploads
from backend.api.deps import Authenticated, Id, SessionDep, SettingsDep
from backend.api.schemas import ModelPublic, ModelsPublic
from backend.core.errors import Invalid, NotFound
from backend.store import artifacts, uploaded_models
from backend.store.records import ModelRecord
from runspec.modelfile import (
    KERAS,
    SAVED_MODEL,
    TFLITE,
    ModelRefused,
    model_limits,
    scan_model_file,
    tf_keras_copy_filename,
)

router = APIRouter(prefix="/api/models", tags=["models"], dependencies=Authenticated)
SUFFIX = {KERAS: ".keras", SAVED_MODEL: ".zip", TFLITE: ".tflite"}


def _public(r: ModelRecord) -> ModelPublic:
    return ModelPublic(
        id=r.id,
        name=r.name,
        original_filename=r.original_filename,
        sha256=r.sha256,
        size_bytes=r.size_bytes,
        format=r.format,
        keras_flavour=r.keras_flavour,
        status=r.status,
        preflight=r.preflight,
        created_at=r.created_at,
    )


def _refusal(exc: ModelRefused) -> Exception:
    loc = ["body", "file", *exc.loc]
    if exc.status == 413:
        return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"{'.'.join(map(str, loc))}: {exc}")
    return Invalid.at(loc, str(exc))


@router.post("", status_code=status.HTTP_201_CREATED)
def upload_model(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description=".keras, a SavedModel directory as .zip, or .tflite")],
    name: Annotated[str | None, Form(min_length=1, max_length=200)] = None,
) -> ModelPublic:
    """Upload a model; it is scanned, loaded in a sandbox (safe mode) and preflighted first.

    The body is bounded while it streams (OPTIBOARD_MAX_UPLOAD_BYTES, 413). The archive is bounded
    from its zip directory (OPTIBOARD_MAX_MODEL_BYTES expanded, 413; members, ratio, no traversal
    or symlinks) and config.json checked against an allowlist of Keras classes and modules, in this
    process and without loading anything; then a separate process with memory, CPU and time limits
    loads it with safe_mode=True and computes the preflight. Every refusal is a 422 whose `loc`
    names the member or layer (`["body", "file", "config.json", "layers", 3]`); HDF5 is refused.
    """
    if name is not None and "\x00" in name:
        raise Invalid.at(("body", "name"), "NUL characters are not allowed")
    original = (file.filename or "model").replace("\x00", "")[-200:] or "model"
    settings.model_files.mkdir(parents=True, exist_ok=True)
    stem = secrets.token_hex(16)
    tmp = artifacts.writable_inside(settings.artifacts, f"models/{stem}.part")
    tmp_copy = artifacts.writable_inside(settings.artifacts, f"models/{stem}.copy.part")
    try:
        size, sha256 = uploads.receive(file.file, tmp, max_bytes=settings.max_upload_bytes)
        try:
            scan = scan_model_file(tmp, original, model_limits(settings.max_model_bytes))
            preflight = request.app.state.model_checker.check(tmp, original, copy_to=tmp_copy)
        except ModelRefused as exc:
            raise _refusal(exc) from None
        relative = f"models/{stem}{SUFFIX[scan.format]}"
        if tmp_copy.exists():
            shutil.move(tmp_copy, artifacts.writable_inside(settings.artifacts, tf_keras_copy_filename(relative)))
        shutil.move(tmp, artifacts.writable_inside(settings.artifacts, relative))
    finally:
        tmp.unlink(missing_ok=True)
        tmp_copy.unlink(missing_ok=True)
    record = uploaded_models.add_model(
        session,
        name=name or original,
        original_filename=original,
        filename=relative,
        sha256=sha256,
        size_bytes=size,
        format=scan.format,
        keras_flavour=scan.keras_flavour,
        status="measurement_only" if scan.format == TFLITE else "ready",
        preflight=preflight,
    )
    return _public(record)


@router.get("")
def read_models(session: SessionDep) -> ModelsPublic:
    """Uploaded models, newest first, with their preflight."""
    records = uploaded_models.list_models(session)
    return ModelsPublic(data=[_public(r) for r in records], count=len(records))


@router.get("/{model_id}")
def read_model(session: SessionDep, model_id: Id) -> ModelPublic:
    """One uploaded model with its preflight."""
    record = uploaded_models.get_model(session, model_id=model_id)
    if record is None:
        raise NotFound(f"model {model_id} not found")
    return _public(record)


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(session: SessionDep, settings: SettingsDep, model_id: Id) -> None:
    """Delete an uploaded model and its file."""
    record = uploaded_models.delete_model(session, model_id=model_id)
    if record is None:
        raise NotFound(f"model {model_id} not found")
    session.commit()
    for name in (record.filename, tf_keras_copy_filename(record.filename)):
        path = artifacts.resolve_inside(settings.artifacts, name)
        if path is not None:
            path.unlink(missing_ok=True)
