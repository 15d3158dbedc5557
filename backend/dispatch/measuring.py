"""Asking for a finished run's TFLite variants to be measured on a device: the checks, the rows,
and the jobs sent to the device's own queue after the commit that stored them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sqlalchemy.orm import Session

from backend.core.errors import Conflict, Invalid, NotFound
from backend.dispatch.queue import JobQueue
from backend.store import measurements, runs, variants
from backend.store.records import MeasurementRecord, VariantRecord
from runspec.vocabulary import UPLOADED_FORMAT

log = logging.getLogger(__name__)


def measurable_variants(session: Session, *, run_id: int) -> list[VariantRecord]:
    """The run's TFLite variants whose files are whole (a Keras model's latency is a Python call,
    never compared with a TFLite invocation). Raises NotFound (no such run), Conflict (the run
    has not succeeded, or has no TFLite variant to measure)."""
    run = runs.get_run(session, run_id=run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    if run.status != "succeeded":
        raise Conflict(f"run {run_id} is {run.status}: only a succeeded run's variants can be measured on a device")
    found = [
        v
        for v in variants.list_variants(session, run_ids=[run_id])
        if runs_in_litert(v.format, v.extra) and not v.damaged
    ]
    if not found:
        raise Conflict(f"run {run_id} has no TFLite variant to measure (its exports are measured as TFLite files)")
    return found


def runs_in_litert(fmt: str, extra: Mapping[str, Any] | None) -> bool:
    """Whether a variant is a .tflite file: a TFLite export, or an uploaded model measured as one
    (a .tflite upload, a SavedModel converted: `extra.measured_as`)."""
    if fmt == UPLOADED_FORMAT:
        fmt = str((extra or {}).get("measured_as") or "")
    return fmt.startswith("tflite")


def request_on_device(
    session: Session, queue: JobQueue, *, run_id: int, device: str, online: Callable[[], Collection[str]]
) -> list[MeasurementRecord]:
    """One measurement per TFLite variant of the run on `device`, committed, then sent to the
    device's queue (`measure.<device>`). `online()`: the device labels of the workers online now
    (asked only once the run passed its checks: it waits on the broker).

    Raises NotFound/Conflict (see measurable_variants) and Invalid at body.device when no worker
    of that label is online. A job the broker refused is failed at once with the reason (nothing
    re-sends measurements; asking again is one click)."""
    chosen = measurable_variants(session, run_id=run_id)
    labels = online()
    if device not in labels:
        known = ", ".join(sorted(labels)) or "none"
        raise Invalid.at(("body", "device"), f"no worker labelled {device!r} is online (online devices: {known})")
    created = measurements.add_measurements(session, variants=chosen, device=device)
    session.commit()
    for record in created:
        try:
            queue.enqueue_measurement(measurement_id=record.id, device=device)
        except Exception as e:
            log.warning("measurement %s not sent: %s", record.id, e)
            measurements.fail_measurement(
                session, measurement_id=record.id, error=f"not sent: broker unavailable ({e})"
            )
    session.commit()
    return [r for r in measurements.list_measurements(session, run_ids=[run_id]) if r.id in {c.id for c in created}]
