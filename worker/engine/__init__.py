"""The optimization engine: data, models, techniques, export and the one measurement harness.

Imports no Celery, FastAPI or SQLAlchemy. Importing this package does not import TensorFlow;
`worker.engine.job.run_job` is the entry point (it imports `tfsetup` first).
"""
