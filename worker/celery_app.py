"""The worker's Celery app. Importing it never imports TensorFlow: only the process that runs a
job does (CUDA is not fork-safe, and the prefork parent stays small)."""

from __future__ import annotations

from backend.core.settings import Settings
from backend.dispatch.queue import make_celery

app = make_celery(Settings(), "optiboard-worker")
app.conf.include = ["worker.tasks"]

import worker.gpus  # noqa: E402,F401  (registers the optiboard_hardware inspect command)
