"""The Celery task: a thin adapter. It handles delivery only; worker.execution does the work."""

from __future__ import annotations

from backend.dispatch.queue import TASK_EXECUTE_RUN, TASK_MEASURE_ON_DEVICE
from worker.celery_app import DEVICE, app


@app.task(name=TASK_EXECUTE_RUN, bind=True, acks_late=True, reject_on_worker_lost=True)
def execute_run(self, run_id: int) -> str:  # type: ignore[no-untyped-def]
    from worker.execution import execute

    return execute(int(run_id), worker=str(self.request.hostname or "worker"))


@app.task(name=TASK_MEASURE_ON_DEVICE, bind=True, acks_late=True, reject_on_worker_lost=True)
def measure_on_device(self, measurement_id: int, device: str) -> str:  # type: ignore[no-untyped-def]
    from worker.measuring import execute_measurement

    return execute_measurement(
        int(measurement_id),
        device=str(device),
        own_device=DEVICE,
        worker=str(self.request.hostname or "worker"),
    )
