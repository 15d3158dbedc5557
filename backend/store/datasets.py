"""Uploaded datasets: metadata rows; the .npz file lives under the data directory."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.records import DatasetRecord


def _record(row: m.Dataset) -> DatasetRecord:
    return DatasetRecord(
        id=row.id,
        name=row.name,
        filename=row.filename,
        size_bytes=row.size_bytes,
        info=dict(row.info or {}),
        created_at=row.created_at,
    )


def add_dataset(session: Session, *, name: str, filename: str, size_bytes: int, info: dict[str, Any]) -> DatasetRecord:
    """Records an uploaded .npz stored under the server-chosen `filename` (`size_bytes` on disk,
    `info` the validator's description); flushed, not committed.
    """
    row = m.Dataset(name=name, filename=filename, size_bytes=size_bytes, info=info)
    session.add(row)
    session.flush()
    return _record(row)


def get_dataset(session: Session, *, dataset_id: int) -> DatasetRecord | None:
    """The uploaded dataset with this id, or None."""
    row = session.get(m.Dataset, dataset_id)
    return _record(row) if row else None


def list_datasets(session: Session) -> list[DatasetRecord]:
    """Every uploaded dataset, newest first."""
    return [_record(r) for r in session.scalars(select(m.Dataset).order_by(m.Dataset.id.desc()))]


def record_sha256(session: Session, *, dataset_id: int, sha256: str) -> None:
    """Store the hex SHA-256 of a dataset uploaded before digests were kept (`info.sha256`),
    as read from its file the first time a job uses it; flushed, not committed."""
    row = session.get(m.Dataset, dataset_id)
    if row is not None and not (row.info or {}).get("sha256"):
        row.info = {**(row.info or {}), "sha256": sha256}
        session.flush()
