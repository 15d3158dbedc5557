"""User datasets: .npz uploads (x_train, y_train, x_test, y_test), stored under a server-chosen name."""

from __future__ import annotations

import secrets
import shutil
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile, status

from backend.api import uploads
from backend.api.deps import Authenticated, SessionDep, SettingsDep
from backend.api.schemas import DatasetPublic, DatasetsPublic
from backend.core.errors import Invalid
from backend.store import datasets
from backend.store.records import DatasetRecord

router = APIRouter(prefix="/api/datasets", tags=["datasets"], dependencies=Authenticated)


def _public(r: DatasetRecord) -> DatasetPublic:
    return DatasetPublic(id=r.id, name=r.name, size_bytes=r.size_bytes, info=r.info, created_at=r.created_at)


@router.post("", status_code=status.HTTP_201_CREATED)
def upload_dataset(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description=".npz with x_train, y_train, x_test, y_test")],
    name: Annotated[str | None, Form(min_length=1, max_length=200)] = None,
) -> DatasetPublic:
    """Upload a dataset as an .npz file; its arrays are checked before it is kept.

    The archive is bounded before anything is decompressed (its expanded size from the zip
    directory and .npy headers against OPTIBOARD_MAX_DATASET_BYTES, member count and ratio,
    no symlinks or traversal names), then its values are checked in 4 MiB chunks: memory does
    not grow with the dataset. 422 names the array at fault (`["body", "file", "y_train"]`).
    Labels must be 0..K-1, or mapped by an optional `classes` array; `class_names` optional.
    `info.sha256` is the hex SHA-256 of the stored file; a run reading it checks it first.
    """
    if name is not None and "\x00" in name:
        raise Invalid.at(("body", "name"), "NUL characters are not allowed")
    from runspec.npz import DatasetRefused, validate_npz  # numpy only: no TensorFlow in the API

    settings.uploads.mkdir(parents=True, exist_ok=True)
    filename = f"{secrets.token_hex(16)}.npz"
    target = settings.uploads / filename
    tmp = target.with_suffix(".part")
    try:
        size, sha256 = uploads.receive(file.file, tmp, max_bytes=settings.max_upload_bytes)
        try:
            info = validate_npz(
                tmp, max_expanded_bytes=settings.max_dataset_bytes, max_ratio=settings.max_dataset_ratio
            )
        except Exception as e:  # whatever the bytes are (empty, truncated, hostile): the upload is refused
            loc = ["body", "file"]
            if isinstance(e, DatasetRefused):
                loc += [] if e.array == "file" else [e.array]
            elif not isinstance(e, ValueError):
                e = ValueError(f"not a readable .npz file: {type(e).__name__}")
            raise Invalid.at(loc, str(e)) from None
        shutil.move(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    display = name or (file.filename or "dataset").replace("\x00", "")[:200] or "dataset"
    # the SHA-256 of the stored bytes: a job checks it before it reads the file (worker.execution)
    record = datasets.add_dataset(
        session, name=display, filename=filename, size_bytes=size, info={**info, "sha256": sha256}
    )
    return _public(record)


@router.get("")
def read_datasets(session: SessionDep) -> DatasetsPublic:
    """Uploaded datasets."""
    records = datasets.list_datasets(session)
    return DatasetsPublic(data=[_public(r) for r in records], count=len(records))
