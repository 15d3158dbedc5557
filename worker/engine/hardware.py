"""The machine and library versions a measurement was taken on (compare like with like)."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
from typing import Any


@functools.cache
def cpuinfo() -> dict[str, str]:
    """/proc/cpuinfo's fields, each as the first processor lists it ("model name", "flags");
    empty off Linux."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _cpu_model() -> str:
    return cpuinfo().get("model name") or platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def fingerprint() -> dict[str, Any]:
    import tensorflow as tf

    gpus = []
    for dev in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(dev)
        gpus.append(details.get("device_name", dev.name))
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "machine": platform.machine(),
        "os": platform.platform(),
        "gpus": gpus,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "tf_keras": _version("tf-keras"),
        "tfmot": _version("tensorflow-model-optimization"),
        "ai_edge_litert": _version("ai-edge-litert"),
        "numpy": _version("numpy"),
    }
