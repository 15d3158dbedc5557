"""Uploaded-model rows (migration 0008) on SQLite and PostgreSQL: add, read, list, delete;
the server-chosen file name is unique."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.store import uploaded_models


def add(session: Session, filename: str, **overrides: object):  # type: ignore[no-untyped-def]
    fields = {
        "name": "m",
        "original_filename": "m.keras",
        "filename": filename,
        "sha256": "ab" * 32,
        "size_bytes": 1234,
        "format": "keras",
        "keras_flavour": "keras3",
        "status": "ready",
        "preflight": {"kind": "functional", "layers": [{"path": "conv", "prune": {"status": "yes", "note": None}}]},
    }
    fields.update(overrides)
    return uploaded_models.add_model(session, **fields)  # type: ignore[arg-type]


def test_models_round_trip_newest_first_and_delete(session: Session) -> None:
    first = add(session, "models/a.keras")
    second = add(session, "models/b.tflite", format="tflite", keras_flavour=None, status="measurement_only")
    session.commit()
    read = uploaded_models.get_model(session, model_id=first.id)
    assert read == first and read.preflight["layers"][0]["prune"]["status"] == "yes"
    assert read.created_at.tzinfo is not None
    assert [m.id for m in uploaded_models.list_models(session)] == [second.id, first.id]
    assert uploaded_models.delete_model(session, model_id=first.id) == first
    session.commit()
    assert uploaded_models.get_model(session, model_id=first.id) is None
    assert uploaded_models.delete_model(session, model_id=first.id) is None


def test_server_file_names_are_unique(session: Session) -> None:
    add(session, "models/same.keras")
    with pytest.raises(IntegrityError):
        add(session, "models/same.keras")
