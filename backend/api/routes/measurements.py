"""Measurements on target devices: the online devices, asking for a run's variants to be
measured on one, and reading what they measured (issue 18 item 4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from backend.api.deps import Authenticated, Id, QueueDep, SessionDep
from backend.api.routes.ops import DEFAULT_PING_TIMEOUT_S, inspect_workers
from backend.api.schemas import DevicePublic, DevicesPublic, MeasurementPublic, MeasurementRequest, MeasurementsPublic
from backend.core.errors import NotFound
from backend.dispatch.measuring import request_on_device
from backend.dispatch.queue import JobQueue
from backend.store import measurements, runs

router = APIRouter(prefix="/api", tags=["devices"], dependencies=Authenticated)


def online_devices(queue: JobQueue, *, timeout_s: float = DEFAULT_PING_TIMEOUT_S) -> list[DevicePublic]:
    """The device labels of the workers answering a ping now, each with its workers' names.
    Raises HTTPException 503 when the broker cannot be reached."""
    try:
        workers = inspect_workers(queue.app, timeout_s=timeout_s)
    except Exception as e:
        raise HTTPException(503, "broker unavailable") from e
    devices: dict[str, DevicePublic] = {}
    for w in workers:
        if w.device:
            found = devices.setdefault(w.device, DevicePublic(device=w.device, workers=[], hardware=w.hardware))
            found.workers.append(w.name)
    return [devices[k] for k in sorted(devices)]


@router.get("/devices")
def read_devices(
    queue: QueueDep,
    timeout: Annotated[
        float, Query(gt=0, le=10, description="seconds to wait for workers to answer")
    ] = DEFAULT_PING_TIMEOUT_S,
) -> DevicesPublic:
    """Devices online now: the labels of the workers started with --device."""
    found = online_devices(queue, timeout_s=timeout)
    return DevicesPublic(data=found, count=len(found))


@router.post("/runs/{run_id}/measurements", status_code=status.HTTP_202_ACCEPTED)
def create_measurements(
    run_id: Id, body: MeasurementRequest, session: SessionDep, queue: QueueDep
) -> MeasurementsPublic:
    """Measure a succeeded run's TFLite variants on an online device; 422 at device if none is online."""
    created = request_on_device(
        session, queue, run_id=run_id, device=body.device, online=lambda: {d.device for d in online_devices(queue)}
    )
    return MeasurementsPublic(data=[MeasurementPublic.of(r) for r in created], count=len(created))


@router.get("/runs/{run_id}/measurements")
def read_measurements(run_id: Id, session: SessionDep) -> MeasurementsPublic:
    """The run's device measurements, by variant then in the order they were asked for."""
    if runs.get_run(session, run_id=run_id) is None:
        raise NotFound(f"run {run_id} not found")
    found = measurements.list_measurements(session, run_ids=[run_id])
    return MeasurementsPublic(data=[MeasurementPublic.of(r) for r in found], count=len(found))
