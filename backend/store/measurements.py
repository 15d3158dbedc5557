"""Measurements of variants on target devices (issue 18 item 4): requested by a user, taken by
the worker labelled with that device, stored with the fingerprint of what measured them.

Every transition is one conditional UPDATE (queued → running → succeeded | failed), as for runs,
so a duplicate delivery is a no-op and a terminal measurement never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.records import MEASUREMENT_FIGURES, MeasurementRecord, VariantRecord, measurement_record

ERROR_MAX_CHARS = 5000


def _select() -> Any:
    return select(m.VariantMeasurement, m.Variant.run_id, m.Variant.format).join(
        m.Variant, m.Variant.id == m.VariantMeasurement.variant_id
    )


def add_measurements(session: Session, *, variants: Sequence[VariantRecord], device: str) -> list[MeasurementRecord]:
    """One queued measurement per variant for `device`, in the order given (flushed, not
    committed: send the jobs after the caller's commit)."""
    rows = [
        m.VariantMeasurement(variant_id=v.id, device=device, status="queued", fingerprint={}, extra={})
        for v in variants
    ]
    session.add_all(rows)
    session.flush()
    return [measurement_record(r, run_id=v.run_id, fmt=v.format) for r, v in zip(rows, variants, strict=True)]


def get_measurement(session: Session, *, measurement_id: int) -> MeasurementRecord | None:
    """The measurement with this id, or None."""
    found = session.execute(_select().where(m.VariantMeasurement.id == measurement_id)).first()
    return measurement_record(found[0], run_id=found[1], fmt=found[2]) if found else None


def list_measurements(
    session: Session, *, run_ids: Sequence[int], status: str | None = None
) -> list[MeasurementRecord]:
    """The measurements of these runs' variants (optionally of one status), by run, variant,
    then in the order they were requested."""
    query = _select().where(m.Variant.run_id.in_(run_ids))
    if status is not None:
        query = query.where(m.VariantMeasurement.status == status)
    query = query.order_by(m.Variant.run_id, m.Variant.id, m.VariantMeasurement.id)
    return [measurement_record(row, run_id=run_id, fmt=fmt) for row, run_id, fmt in session.execute(query)]


def latest_succeeded(session: Session, *, run_ids: Sequence[int]) -> dict[tuple[int, str], MeasurementRecord]:
    """{(variant id, device): its most recent succeeded measurement} over these runs' variants."""
    latest: dict[tuple[int, str], MeasurementRecord] = {}
    for record in list_measurements(session, run_ids=run_ids, status="succeeded"):
        latest[(record.variant_id, record.device)] = record  # ascending ids: the last one wins
    return latest


def claim_measurement(session: Session, *, measurement_id: int, device: str, worker: str) -> bool:
    """queued → running for the worker `worker` labelled `device`. False when it is not queued
    (a duplicate delivery, or already ended) or was asked of another device: do nothing then."""
    result = session.execute(
        update(m.VariantMeasurement)
        .where(
            m.VariantMeasurement.id == measurement_id,
            m.VariantMeasurement.status == "queued",
            m.VariantMeasurement.device == device,
        )
        .values(status="running", worker=worker[:200], started_at=m.utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish_measurement(
    session: Session,
    *,
    measurement_id: int,
    figures: dict[str, Any],
    fingerprint: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> bool:
    """running → succeeded with the figures (keys of MEASUREMENT_FIGURES; others are refused
    with ValueError) and the fingerprint of what measured. False when it was not running."""
    unknown = sorted(set(figures) - set(MEASUREMENT_FIGURES))
    if unknown:
        raise ValueError(f"not measurement figures: {unknown}")
    result = session.execute(
        update(m.VariantMeasurement)
        .where(m.VariantMeasurement.id == measurement_id, m.VariantMeasurement.status == "running")
        .values(
            status="succeeded",
            fingerprint=fingerprint,
            extra=extra or {},
            measured_at=m.utcnow(),
            **{k: figures.get(k) for k in MEASUREMENT_FIGURES},
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def fail_measurement(
    session: Session,
    *,
    measurement_id: int,
    error: str,
    worker: str | None = None,
    fingerprint: dict[str, Any] | None = None,
) -> bool:
    """queued | running → failed with the reason (terminal). False when it had already ended."""
    values: dict[str, Any] = {"status": "failed", "error": error[:ERROR_MAX_CHARS], "measured_at": m.utcnow()}
    if worker is not None:
        values["worker"] = worker[:200]
    if fingerprint is not None:
        values["fingerprint"] = fingerprint
    result = session.execute(
        update(m.VariantMeasurement)
        .where(
            m.VariantMeasurement.id == measurement_id,
            m.VariantMeasurement.status.in_(("queued", "running")),
        )
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
