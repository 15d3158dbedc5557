"""Uploaded models (issue 17): metadata rows; the file lives under the artifact root at the
server-chosen `filename`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.records import ModelRecord


def _record(row: m.Model) -> ModelRecord:
    return ModelRecord(
        id=row.id,
        name=row.name,
        original_filename=row.original_filename,
        filename=row.filename,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        format=row.format,
        keras_flavour=row.keras_flavour,
        status=row.status,
        preflight=dict(row.preflight or {}),
        created_at=row.created_at,
    )


def add_model(
    session: Session,
    *,
    name: str,
    original_filename: str,
    filename: str,
    sha256: str,
    size_bytes: int,
    format: str,
    keras_flavour: str | None,
    status: str,
    preflight: dict[str, Any],
) -> ModelRecord:
    """Records an uploaded model stored at `filename` (relative to the artifact root, chosen by
    the server; `sha256` hex and `size_bytes` of the stored bytes); flushed, not committed."""
    row = m.Model(
        name=name,
        original_filename=original_filename,
        filename=filename,
        sha256=sha256,
        size_bytes=size_bytes,
        format=format,
        keras_flavour=keras_flavour,
        status=status,
        preflight=preflight,
    )
    session.add(row)
    session.flush()
    return _record(row)


def get_model(session: Session, *, model_id: int) -> ModelRecord | None:
    """The uploaded model with this id, or None."""
    row = session.get(m.Model, model_id)
    return _record(row) if row else None


def list_models(session: Session) -> list[ModelRecord]:
    """Every uploaded model, newest first."""
    return [_record(r) for r in session.scalars(select(m.Model).order_by(m.Model.id.desc()))]


def delete_model(session: Session, *, model_id: int) -> ModelRecord | None:
    """Deletes the row and returns what it was (the caller removes the file after the commit),
    or None if there was none."""
    row = session.get(m.Model, model_id)
    if row is None:
        return None
    record = _record(row)
    session.delete(row)
    session.flush()
    return record
