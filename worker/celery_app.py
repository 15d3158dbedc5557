"""The worker's Celery app. Importing it never imports TensorFlow: only the process that runs a
job does (CUDA is not fork-safe, and the prefork parent stays small)."""

from __future__ import annotations

from backend.core.settings import Settings
from backend.dispatch.queue import make_celery

_settings = Settings()
app = make_celery(_settings, "optiboard-worker")
app.conf.include = ["worker.tasks"]
# This worker's device label (`optiboard worker --device rpi4`, OPTIBOARD_DEVICE), or None for a
# training worker: the measurement task refuses a job asked of another label.
DEVICE: str | None = _settings.device

import worker.gpus  # noqa: E402,F401  (registers the optiboard_hardware inspect command)
