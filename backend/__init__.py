"""optiboard backend: settings, store, API and CLI. Never imports TensorFlow."""

__version__ = "0.1.0"
