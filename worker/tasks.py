"""The Celery task: a thin adapter. It handles delivery only; worker.execution does the work."""

from __future__ import annotations

from backend.dispatch.queue import TASK_EXECUTE_RUN
from worker.celery_app import app


@app.task(name=TASK_EXECUTE_RUN, bind=True, acks_late=True, reject_on_worker_lost=True)
def execute_run(self, run_id: int) -> str:  # type: ignore[no-untyped-def]
    from worker.execution import execute

    return execute(int(run_id), worker=str(self.request.hostname or "worker"))
