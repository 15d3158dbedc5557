"""One device measurement job, start to end: claim it for this worker's label, read the variant's
file (checked against its SHA-256), measure it with the engine's harness, and leave the
measurement succeeded or failed with the reason, whatever happens."""

from __future__ import annotations

import logging
import traceback

from pydantic import ValidationError

from backend.store import measurements, runs, variants
from backend.store.db import unit_of_work
from runspec.spec import RunSpec
from runspec.vocabulary import UPLOADED_FORMAT
from worker.execution import _session_factory, on_a_fresh_stack

log = logging.getLogger(__name__)


def execute_measurement(measurement_id: int, *, device: str, own_device: str | None, worker: str) -> str:
    """Measure measurement `measurement_id`, asked of `device`, on this worker (labelled
    `own_device`). Returns 'succeeded', 'failed' or 'skipped' (not queued: a duplicate
    delivery or already ended). A job for another label is never measured here: it fails with
    the reason (only a worker whose queues were set by hand can receive one)."""
    settings, factory = _session_factory()
    if own_device != device:
        why = f"sent to worker {worker} labelled {own_device!r}, not {device!r}: refused (check its queues)"
        with unit_of_work(factory) as session:
            measurements.fail_measurement(session, measurement_id=measurement_id, error=why, worker=worker)
        log.warning("measurement %s: %s", measurement_id, why)
        return "failed"
    with unit_of_work(factory) as session:
        if not measurements.claim_measurement(session, measurement_id=measurement_id, device=device, worker=worker):
            log.info("measurement %s is not queued (duplicate delivery or ended): skipped", measurement_id)
            return "skipped"
        record = measurements.get_measurement(session, measurement_id=measurement_id)
        variant = variants.get_variant(session, variant_id=record.variant_id) if record else None
        run = runs.get_run(session, run_id=variant.run_id) if variant else None

    def fail(why: str) -> str:
        with unit_of_work(factory) as session:
            measurements.fail_measurement(session, measurement_id=measurement_id, error=why)
        log.warning("measurement %s failed: %s", measurement_id, why)
        return "failed"

    if variant is None or run is None:
        return fail("the variant was deleted before it could be measured")
    try:
        spec = RunSpec.model_validate(run.spec)
        with unit_of_work(factory) as session:
            path = variants.verified_file(session, variant=variant, root=settings.artifacts)
    except ValidationError as e:
        return fail(f"the run's stored spec no longer validates: {e}")
    except variants.ArtifactUnavailable as e:
        return fail(f"the model file cannot be used: {e}")
    try:
        from worker.engine.on_device import measure_file  # TensorFlow is imported here, in the job process

        # an uploaded .tflite (or converted SavedModel) is measured as the TFLite file it is
        fmt = (
            str((variant.extra or {}).get("measured_as") or "") if variant.format == UPLOADED_FORMAT else variant.format
        )
        figures, fingerprint, extra = on_a_fresh_stack(measure_file, path, fmt, spec.measurement)
    except Exception as e:
        return fail("".join(traceback.format_exception_only(e)).strip()[-1000:])
    with unit_of_work(factory) as session:
        measurements.finish_measurement(
            session,
            measurement_id=measurement_id,
            figures=figures,
            fingerprint={**fingerprint, "device": device},
            extra=extra,
        )
    return "succeeded"
