"""Variants: every model a run produced, with the harness's measurements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.records import VariantRecord, variant_record


def add_variant(session: Session, *, run_id: int, fields: dict[str, Any]) -> VariantRecord:
    """Insert or replace the run's variant of this format (a redelivered job stays idempotent)."""
    row = session.scalar(
        select(m.Variant).where(m.Variant.run_id == run_id, m.Variant.format == fields["format"])
    )
    if row is None:
        row = m.Variant(run_id=run_id, **fields)
        session.add(row)
    else:
        for k, v in fields.items():
            setattr(row, k, v)
    session.flush()
    return variant_record(row)


def list_variants(session: Session, *, run_ids: Sequence[int]) -> list[VariantRecord]:
    rows = session.scalars(
        select(m.Variant).where(m.Variant.run_id.in_(run_ids)).order_by(m.Variant.run_id, m.Variant.id)
    )
    return [variant_record(r) for r in rows]


def get_variant(session: Session, *, variant_id: int) -> VariantRecord | None:
    row = session.get(m.Variant, variant_id)
    return variant_record(row) if row else None


def artifact_paths(session: Session, *, run_id: int) -> list[str]:
    return list(session.scalars(select(m.Variant.artifact_path).where(m.Variant.run_id == run_id)))
