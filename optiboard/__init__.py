"""optiboard's Python client: submit and follow runs, read their metrics and models, and log an
outside training script's metrics into an external run.

    import optiboard
    ob = optiboard.Client("http://127.0.0.1:8000", token="...")
    run = ob.submit({"name": "digits-int8", "dataset": {"name": "digits"}, "exports": ["int8"]})
    ob.wait(run["id"])

For Keras, `optiboard.keras.OptiboardCallback` logs a model.fit into an external run. Importing
this package never imports TensorFlow.
"""

from __future__ import annotations

from optiboard.client import TERMINAL, Client
from optiboard.errors import OptiboardError

__all__ = ["Client", "OptiboardError", "TERMINAL"]
__version__ = "0.1.0"
