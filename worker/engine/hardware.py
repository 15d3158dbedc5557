"""The one description of the machine: what a worker runs on and what a measurement was taken on.

`describe(gpus)` is the description every part uses, without TensorFlow: the workers page
(`worker.gpus.hardware_summary`, GPUs from nvidia-smi), the hardware stored with each run
(`worker.execution`), the benchmarks' machine line. `fingerprint()` is the same description
with the GPUs TensorFlow itself sees and the library versions, stored with every measured
variant (compare like with like). Only the GPU list's source differs: a process that must not
import TensorFlow asks nvidia-smi, the measuring process asks TensorFlow.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuInfo:
    """One GPU: `index` as CUDA numbers it (a string: CUDA_VISIBLE_DEVICES also takes UUIDs),
    `memory_mib` its total memory in MiB when known."""

    index: str
    name: str
    memory_mib: int | None = None
    uuid: str | None = None


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


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def describe(gpus: Sequence[GpuInfo]) -> dict[str, Any]:
    """The machine this process runs on, as JSON-ready values; imports nothing heavy.

    Keys: hostname, machine (e.g. 'x86_64'), os, cpu (model name), cpu_count (logical CPUs of
    the host), affinity_cpus (those this process may run on; None off Linux), memory_bytes
    (physical RAM), python, cuda_visible_devices (the variable as set, or None), and gpus: one
    {"index": str, "name": str, "memory_mib": int | None} per GPU in `gpus`.
    """
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": _memory_bytes(),
        "python": platform.python_version(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpus": [{"index": g.index, "name": g.name, "memory_mib": g.memory_mib} for g in gpus],
    }


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def tensorflow_gpus() -> list[GpuInfo]:
    """The GPUs TensorFlow can use in this process (imports TensorFlow: engine only)."""
    import tensorflow as tf

    gpus = []
    for dev in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(dev)
        gpus.append(GpuInfo(index=dev.name.rsplit(":", 1)[-1], name=details.get("device_name", dev.name)))
    return gpus


@functools.cache
def fingerprint() -> dict[str, Any]:
    """`describe()` with TensorFlow's GPUs, plus the versions of the libraries that convert and
    run the models (tensorflow, tf_keras, tfmot, ai_edge_litert, numpy; None when absent).
    Cached: computed once per process. Imports TensorFlow."""
    import tensorflow as tf

    return {
        **describe(tensorflow_gpus()),
        "tensorflow": tf.__version__,
        "tf_keras": _version("tf-keras"),
        "tfmot": _version("tensorflow-model-optimization"),
        "ai_edge_litert": _version("ai-edge-litert"),
        "numpy": _version("numpy"),
    }
