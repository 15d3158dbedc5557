"""optiboard worker: the Celery job adapter (worker.tasks) over the TensorFlow engine (worker.engine)."""
