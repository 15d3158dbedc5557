"""Device measurements (migration 0010) on SQLite and PostgreSQL: requested per variant, claimed
only by the device they were asked of, ended once; the latest succeeded one per (variant,
device) is what the compare page reads; a run's deletion takes them with it."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from backend.store import measurements, runs, variants
from tests.factories import make_run, make_variant


def _tflite(session: Session) -> tuple[int, list[int]]:
    run = make_run(session)
    make_variant(session, run.id, "keras", accuracy=0.9, size_bytes=9000)
    make_variant(session, run.id, "tflite-float32", accuracy=0.9, size_bytes=4000)
    make_variant(session, run.id, "tflite-int8", accuracy=0.89, size_bytes=1000)
    tflite = [v for v in variants.list_variants(session, run_ids=[run.id]) if v.format.startswith("tflite")]
    return run.id, [v.id for v in tflite]


def test_a_measurement_is_claimed_by_its_device_only_and_ends_once(session: Session) -> None:
    run_id, ids = _tflite(session)
    tflite = [v for v in variants.list_variants(session, run_ids=[run_id]) if v.id in ids]
    first, second = measurements.add_measurements(session, variants=tflite, device="rpi4")
    session.commit()
    assert (first.status, first.format, first.run_id, first.device) == ("queued", "tflite-float32", run_id, "rpi4")

    # another label's worker cannot take it; the right one can, once
    assert not measurements.claim_measurement(session, measurement_id=first.id, device="jetson", worker="j@h")
    assert measurements.claim_measurement(session, measurement_id=first.id, device="rpi4", worker="rpi4@h")
    assert not measurements.claim_measurement(session, measurement_id=first.id, device="rpi4", worker="rpi4@h")
    figures = {"latency_p50_ms": 0.05, "latency_p90_ms": 0.07, "latency_count": 200, "latency_unstable": False}
    with pytest.raises(ValueError, match="accuracy"):
        measurements.finish_measurement(
            session, measurement_id=first.id, figures={"accuracy": 1.0}, fingerprint={"device": "rpi4"}
        )
    assert measurements.finish_measurement(
        session, measurement_id=first.id, figures=figures, fingerprint={"device": "rpi4", "cpu_count": 4}
    )
    # terminal: neither a second finish nor a failure changes it
    assert not measurements.finish_measurement(session, measurement_id=first.id, figures={}, fingerprint={})
    assert not measurements.fail_measurement(session, measurement_id=first.id, error="late")
    assert measurements.fail_measurement(session, measurement_id=second.id, error="x" * 9000, worker="rpi4@h")
    session.commit()

    done = measurements.get_measurement(session, measurement_id=first.id)
    assert done is not None and done.status == "succeeded" and done.worker == "rpi4@h"
    assert done.figures["latency_p90_ms"] == 0.07 and done.figures["latency_unstable"] is False
    assert done.figures["latency_p99_ms"] is None and done.fingerprint == {"device": "rpi4", "cpu_count": 4}
    assert done.measured_at is not None and done.measured_at.tzinfo is not None
    failed = measurements.get_measurement(session, measurement_id=second.id)
    assert failed is not None and failed.status == "failed" and failed.error == "x" * measurements.ERROR_MAX_CHARS


def test_latest_succeeded_per_variant_and_device_and_cascade(session: Session) -> None:
    run_id, ids = _tflite(session)
    v = [x for x in variants.list_variants(session, run_ids=[run_id]) if x.id == ids[0]]
    for device, p50 in (("rpi4", 1.0), ("rpi4", 2.0), ("jetson", 3.0), ("rpi4", None)):
        (rec,) = measurements.add_measurements(session, variants=v, device=device)
        if p50 is not None:
            measurements.claim_measurement(session, measurement_id=rec.id, device=device, worker="w")
            measurements.finish_measurement(
                session, measurement_id=rec.id, figures={"latency_p50_ms": p50}, fingerprint={}
            )
    session.commit()
    latest = measurements.latest_succeeded(session, run_ids=[run_id])
    assert {k: r.figures["latency_p50_ms"] for k, r in latest.items()} == {
        (ids[0], "rpi4"): 2.0,
        (ids[0], "jetson"): 3.0,
    }
    assert [r.status for r in measurements.list_measurements(session, run_ids=[run_id])] == [
        "succeeded",
        "succeeded",
        "succeeded",
        "queued",
    ]
    lease = runs.claim_run(session, run_id=run_id, worker="w")
    assert lease is not None
    runs.finish_run(session, run_id=run_id, lease=lease, status="failed", error="x")
    assert runs.delete_run(session, run_id=run_id)
    session.commit()
    assert measurements.list_measurements(session, run_ids=[run_id]) == []
