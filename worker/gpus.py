"""GPUs: find the ones this process may use, and tell the API about them.

Discovery reads `nvidia-smi` (never TensorFlow: the worker's parent process must not import it,
CUDA is not fork-safe) and honours CUDA_VISIBLE_DEVICES. `optiboard_hardware` is a Celery
inspect command that the workers page calls. Starting one worker per GPU is the composition
root's job: `cli.workers`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from celery.worker.control import inspect_command

from worker.engine.hardware import GpuInfo, describe

log = logging.getLogger(__name__)


def discover_gpus() -> list[GpuInfo]:
    """NVIDIA GPUs visible to this host, from `nvidia-smi` (no TensorFlow, no CUDA init).

    Returns [] when there is no driver or no GPU; the caller then runs CPU workers.
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [
                smi,
                "--query-gpu=index,name,memory.total,uuid",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia-smi failed, assuming no GPU", extra={"error": str(exc)})
        return []
    return parse_nvidia_smi(out)


_visible_cache: list[GpuInfo] | None = None


def visible_gpus() -> list[GpuInfo]:
    """The GPUs this process may use: all of discover_gpus() narrowed by CUDA_VISIBLE_DEVICES
    (indexes or UUIDs; "-1" or "" means none). Cached: the answer cannot change in a process.
    """
    global _visible_cache
    if _visible_cache is None:
        _visible_cache = filter_visible(discover_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))
    return list(_visible_cache)


def filter_visible(gpus: Sequence[GpuInfo], cuda_visible_devices: str | None) -> list[GpuInfo]:
    if cuda_visible_devices is None:
        return list(gpus)
    wanted = [w.strip() for w in cuda_visible_devices.split(",") if w.strip()]
    chosen: list[GpuInfo] = []
    for want in wanted:
        if want.startswith("-"):  # CUDA stops at the first invalid id
            break
        match = [g for g in gpus if want in (g.index, g.uuid)]
        if not match:
            break
        chosen.append(match[0])
    return chosen


def hardware_summary() -> dict[str, Any]:
    """What a worker process runs on (worker.engine.hardware.describe with the GPUs it may use),
    without importing TensorFlow: for /api/workers and the hardware stored with each run."""
    return describe(visible_gpus())


@inspect_command()
def optiboard_hardware(state: Any) -> dict[str, Any]:
    """`celery inspect optiboard_hardware`: answered by every worker that imported this module
    (worker/celery_app.py does), from the worker's main process: hardware_summary() plus
    `device`, the worker's device label (None for a training worker)."""
    from worker.celery_app import DEVICE

    return {**hardware_summary(), "device": DEVICE}


def parse_nvidia_smi(csv_text: str) -> list[GpuInfo]:
    """Parse `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader`."""
    gpus = []
    for line in csv_text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        memory = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
        uuid = parts[3] if len(parts) > 3 and parts[3] else None
        gpus.append(GpuInfo(index=parts[0], name=parts[1], memory_mib=memory, uuid=uuid))
    return gpus


def parse_gpu_list(value: str | None) -> list[str]:
    """`"0,1"` -> ["0", "1"]; `"all"` -> every discovered GPU; `""`/`"none"`/`"cpu"` -> [].

    GPU ids are kept as strings: CUDA_VISIBLE_DEVICES also accepts UUIDs (`GPU-...`).
    """
    if value is None:
        return []
    text = value.strip().lower()
    if text in ("", "none", "cpu"):
        return []
    if text == "all":
        return [gpu.index for gpu in discover_gpus()]
    ids = [part.strip() for part in value.split(",") if part.strip()]
    if len(set(ids)) != len(ids):
        raise ValueError(f"GPU listed twice in {value!r}")
    return ids
