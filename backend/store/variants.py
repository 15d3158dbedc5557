"""Variants: every model a run produced, with the harness's measurements."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.artifacts import resolve_inside, sha256_file
from backend.store.records import VariantRecord, variant_record


def add_variant(session: Session, *, run_id: int, fields: dict[str, Any]) -> VariantRecord:
    """Insert or replace the run's variant of this format (a redelivered job stays idempotent)."""
    row = session.scalar(select(m.Variant).where(m.Variant.run_id == run_id, m.Variant.format == fields["format"]))
    if row is None:
        row = m.Variant(run_id=run_id, **fields)
        session.add(row)
    else:
        for k, v in fields.items():
            setattr(row, k, v)
    session.flush()
    return variant_record(row)


def list_variants(session: Session, *, run_ids: Sequence[int]) -> list[VariantRecord]:
    """The variants of these runs, by run then in the order they were stored."""
    rows = session.scalars(
        select(m.Variant).where(m.Variant.run_id.in_(run_ids)).order_by(m.Variant.run_id, m.Variant.id)
    )
    return [variant_record(r) for r in rows]


def get_variant(session: Session, *, variant_id: int) -> VariantRecord | None:
    """The variant with this id, or None."""
    row = session.get(m.Variant, variant_id)
    return variant_record(row) if row else None


def artifact_paths(session: Session, *, run_id: int) -> list[str]:
    """The artifact paths (relative to the artifact root) of a run's variants."""
    return list(session.scalars(select(m.Variant.artifact_path).where(m.Variant.run_id == run_id)))


class ArtifactUnavailable(Exception):
    """A variant's file cannot be served or read: missing, or not the bytes that were stored.
    `damaged` is True when the file exists but its SHA-256 differs (the variant is marked)."""

    def __init__(self, message: str, *, damaged: bool) -> None:
        super().__init__(message)
        self.damaged = damaged


def verified_file(session: Session, *, variant: VariantRecord, root: Path) -> Path:
    """The variant's file, after checking its SHA-256 against the one stored with it.

    A mismatch marks the variant damaged (`variants.damaged`, flushed in `session`: the caller
    commits it even though it then refuses the read) and raises ArtifactUnavailable; a variant
    already marked is refused without reading the file again. A variant stored before
    migration 0005 has no digest: the file is trusted on this first read and its digest
    recorded, so any later change is caught (docs/architecture.md, "Artifact integrity").

    Raises ArtifactUnavailable (missing file, outside the root, damaged)."""
    if variant.damaged:
        raise ArtifactUnavailable(f"the file of variant {variant.id} is damaged: {variant.damaged}", damaged=True)
    path = resolve_inside(root, variant.artifact_path)
    if path is None:
        raise ArtifactUnavailable(f"the file of variant {variant.id} is missing", damaged=False)
    actual = sha256_file(path)
    row = session.get(m.Variant, variant.id)
    if variant.sha256 is None:
        if row is not None:
            row.sha256 = actual
            session.flush()
        return path
    if actual != variant.sha256:
        why = (
            f"SHA-256 {actual[:16]}… of the {path.stat().st_size:,}-byte file differs from "
            f"{variant.sha256[:16]}… stored with it; re-run the job to produce it again"
        )
        if row is not None:
            row.damaged = why[:500]
            session.flush()
        raise ArtifactUnavailable(f"the file of variant {variant.id} is damaged: {why}", damaged=True)
    return path
