"""Run specs for fault tests: real TensorFlow on digits, as small as a run can be."""

from __future__ import annotations

from typing import Any

from tests.stack import tiny_spec


def quick_spec(name: str, **overrides: Any) -> dict[str, Any]:
    """One epoch on 200 digits, the Keras variant only: seconds on a warm worker process."""
    spec = tiny_spec(
        name,
        experiment="faults",
        exports=[],
        dataset={"name": "digits", "limit_train": 200},
        training={"epochs": 1, "batch_size": 32, "log_every_n_batches": 2},
        measurement={"protocol": "quick", "latency_runs": 10, "warmup_runs": 0, "throughput_batch": 1},
    )
    spec.update(overrides)
    return spec


def long_spec(name: str, epochs: int = 12) -> dict[str, Any]:
    """A run that trains long enough to be killed, cancelled or outlive a broker restart."""
    return quick_spec(
        name,
        dataset={"name": "digits", "limit_train": 600},
        training={"epochs": epochs, "batch_size": 16, "log_every_n_batches": 1},
    )
