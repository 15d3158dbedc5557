"""A tiny real Celery app for spawn_workers tests: reports each worker's own environment.

Run by `celery -A echo_app worker` in child processes (this directory on PYTHONPATH); the
broker comes from DEPLOY_TEST_BROKER. A custom remote-control command answers from the
worker's main process, so every node reports its own CUDA_VISIBLE_DEVICES, whichever node
would have won a task.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.worker.control import inspect_command

app = Celery("echo", broker=os.environ["DEPLOY_TEST_BROKER"])
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_hijack_root_logger = False


@inspect_command()
def worker_environment(state: Any) -> dict[str, Any]:
    return {
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "optiboard_worker_gpu": os.environ.get("OPTIBOARD_WORKER_GPU"),
        "tf_force_gpu_allow_growth": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH"),
        "pid": os.getpid(),
        "hostname": state.consumer.hostname,
    }
