"""The optimization engine: data, models, techniques, export and the one measurement harness.

Imports no Celery, FastAPI or SQLAlchemy. Importing this package does not import TensorFlow;
`worker.engine.job.run_job` is the entry point.

tfmot 0.8 needs Keras 2, chosen by TF_USE_LEGACY_KERAS before TensorFlow is first imported.
A package's __init__ runs before any of its modules, so setting it here holds whichever engine
module is imported first (ruff's import sorting puts `tensorflow` above first-party imports);
`tfsetup` sets it too and refuses to run if TensorFlow was loaded with Keras 3.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
