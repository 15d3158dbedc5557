"""Dispatch: submission checks, enqueue after commit, and the maintenance loop (reaper,
re-sender of lost jobs, digest backfill). Knows the store and the Celery client by task name;
never TensorFlow, never FastAPI."""
