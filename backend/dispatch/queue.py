"""The Celery side the API needs: configuration shared with the worker, and sending a run's job
by task name (the API never imports the worker or TensorFlow)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from backend.core.settings import Settings
from runspec.vocabulary import DEVICE_QUEUE_PREFIX

TASK_EXECUTE_RUN = "optiboard.execute_run"
TASK_MEASURE_ON_DEVICE = "optiboard.measure_on_device"
QUEUE_FOR_KIND = {"train": "train", "optimize": "optimize"}


def device_queue(device: str) -> str:
    """The Celery queue of a device label's measurement jobs: `measure.<label>`. Only a worker
    started with `--device <label>` consumes it (never the training queues' workers)."""
    return DEVICE_QUEUE_PREFIX + device


def queue_device(queue: str) -> str | None:
    """The device label a queue serves, or None for any other queue."""
    return queue.removeprefix(DEVICE_QUEUE_PREFIX) if queue.startswith(DEVICE_QUEUE_PREFIX) else None


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Long jobs: acknowledge only when done, hand the job back if the worker dies, and let
        # each worker process reserve one job at a time.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": "train",
        # Redis redelivers an unacknowledged message after the visibility timeout; the run's
        # database lease makes a second delivery a no-op, so it only needs to exceed one job.
        "broker_transport_options": {"visibility_timeout": 12 * 3600},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
    }


def make_celery(settings: Settings, name: str = "optiboard") -> Celery:
    app = Celery(name)
    app.conf.update(celery_config(settings))
    return app


class JobQueue:
    """Sends jobs. One per app; its connection pool is reused across requests."""

    def __init__(self, settings: Settings) -> None:
        self.app = make_celery(settings, "optiboard-api")

    def enqueue_run(self, *, run_id: int, kind: str) -> str:
        result = self.app.send_task(TASK_EXECUTE_RUN, args=[run_id], queue=QUEUE_FOR_KIND.get(kind, "train"))
        return str(result.id)

    def enqueue_measurement(self, *, measurement_id: int, device: str) -> str:
        """Send a device measurement to its device's own queue (never a training queue); the
        device label travels with it so the worker can refuse a job for another label."""
        result = self.app.send_task(TASK_MEASURE_ON_DEVICE, args=[measurement_id, device], queue=device_queue(device))
        return str(result.id)

    def queue_lengths(self) -> dict[str, int]:
        with self.app.connection_for_write() as conn:
            client = conn.default_channel.client
            return {q: int(client.llen(q)) for q in QUEUE_FOR_KIND.values()}

    def ping(self) -> bool:
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            return bool(conn.default_channel.client.ping())

    def close(self) -> None:
        self.app.close()
