"""tfmot (the preflight, the engine) needs tf.keras to be tf-keras, which TensorFlow decides when
it is first imported: set it before any test module here imports Keras."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
