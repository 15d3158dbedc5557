"""GPUs: find them, start one Celery worker per GPU, and set TensorFlow up inside a worker.

Why one process per GPU rather than one worker seeing all GPUs: a training job then owns its
device outright (CUDA_VISIBLE_DEVICES pins it before TensorFlow loads), a crash or leak in
one job cannot take the other GPUs' jobs with it, and Celery's prefetch of one task per
process spreads queued runs over the GPUs. The parent process here never imports
TensorFlow: CUDA is not fork-safe, and the parent only supervises.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from celery.worker.control import inspect_command

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class GpuInfo:
    index: str
    name: str
    memory_mib: int | None = None
    uuid: str | None = None


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
    """What a worker process runs on, without importing TensorFlow: for /api/workers and
    the hardware stored with each run."""
    gpus = visible_gpus()
    return {
        "hostname": socket.gethostname(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpus": [{"index": g.index, "name": g.name, "memory_mib": g.memory_mib} for g in gpus],
    }


@inspect_command()
def optiboard_hardware(state: Any) -> dict[str, Any]:
    """`celery inspect optiboard_hardware`: answered by every worker that imported this module
    (worker/celery_app.py does), from the worker's main process."""
    return hardware_summary()


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


def worker_hostname(gpu: str | None, host: str | None = None) -> str:
    """Celery node name: `gpu0@host` for GPU 0, `cpu@host` without a GPU."""
    host = host or socket.gethostname()
    label = f"gpu{gpu}" if gpu is not None else "cpu"
    return f"{label}@{host}"


def worker_argv(
    gpu: str | None,
    *,
    queues: Sequence[str],
    concurrency: int = 1,
    host: str | None = None,
    app: str | None = None,
    loglevel: str = "INFO",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line of one worker process, run with this interpreter.

    By default the child is `optiboard worker` without `--gpus` (python -m backend.cli), so
    it configures logging and Celery exactly like a worker started by hand. With `app`, it is
    a bare `celery -A app worker` instead (used by tests with an app of their own).
    """
    name = worker_hostname(gpu, host)
    if app is None:
        return [
            sys.executable,
            "-m",
            "backend.cli",
            "worker",
            "--queues",
            ",".join(queues),
            "--concurrency",
            str(concurrency),
            "--name",
            name,
            *extra_args,
        ]
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "--hostname",
        name,
        "--queues",
        ",".join(queues),
        "--concurrency",
        str(concurrency),
        "--loglevel",
        loglevel,
        *extra_args,
    ]


def worker_env(gpu: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of one worker: its GPU pinned, memory growth on, legacy Keras."""
    env = dict(os.environ if base is None else base)
    # "-1" hides every GPU from a CPU worker, so a CPU job never grabs a GPU by accident.
    env["CUDA_VISIBLE_DEVICES"] = gpu if gpu is not None else "-1"
    env["OPTIBOARD_WORKER_GPU"] = gpu if gpu is not None else ""
    # Same effect as configure_gpu()'s set_memory_growth, but also for code that initialises
    # TensorFlow before the engine gets a chance to call it.
    env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the supervising parent dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass


def spawn_workers(
    gpus: str | Sequence[str],
    *,
    queues: str | Sequence[str],
    concurrency: int = 1,
    host: str | None = None,
    app: str | None = None,
    loglevel: str = "INFO",
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> int:
    """Run one Celery worker per GPU in `gpus` (one CPU worker if `gpus` is empty) and wait.

    `gpus` is a list of ids or the text given to `--gpus` ("0,1", "all", "none"); `queues`
    a list or "train,optimize". Each child gets CUDA_VISIBLE_DEVICES=<gpu> and the node name
    `gpu<id>@<host>` (`cpu@<host>` and CUDA_VISIBLE_DEVICES=-1 when there is no GPU).
    SIGINT/SIGTERM received here are forwarded to every child: Celery's warm shutdown, the
    running job finishes first. A second SIGINT, forwarded too, is Celery's cold shutdown:
    the job is abandoned, its heartbeat stops and the API's reaper requeues the run. If one
    child exits on its own, the others are stopped as well so that a supervisor (Docker's
    restart policy, systemd) restarts the whole set. Returns the exit code to use: 0 if every
    child exited cleanly, else the first non-zero code seen.
    """
    if isinstance(gpus, str):
        gpus = parse_gpu_list(gpus)
    elif len(gpus) == 1:  # `--gpus all` split by a caller
        gpus = parse_gpu_list(gpus[0])
    if isinstance(queues, str):
        queues = [q.strip() for q in queues.split(",") if q.strip()]
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if not queues:
        raise ValueError("at least one queue is needed")
    slots: list[str | None] = list(gpus) if gpus else [None]
    child_env = dict(os.environ if env is None else env)
    if app is None:
        child_env.setdefault("OPTIBOARD_LOG_LEVEL", loglevel)
    children: list[tuple[str | None, subprocess.Popen[bytes]]] = []
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        log.info("forwarding signal to workers", extra={"signal": signal.Signals(signum).name})
        for _gpu, proc in children:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, forward)
    try:
        for gpu in slots:
            argv = worker_argv(
                gpu,
                queues=queues,
                concurrency=concurrency,
                host=host,
                app=app,
                loglevel=loglevel,
                extra_args=extra_args,
            )
            # A session of its own: a Ctrl-C on the terminal reaches the children once,
            # through `forward`, not twice (twice would be a cold shutdown).
            proc = subprocess.Popen(
                argv,
                env=worker_env(gpu, child_env),
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            children.append((gpu, proc))
            log.info(
                "worker started",
                extra={"gpu": gpu, "pid": proc.pid, "hostname": worker_hostname(gpu, host)},
            )
        return _wait(children, lambda: stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for _gpu, proc in children:
            if proc.poll() is None:  # only when _wait was interrupted by an exception
                proc.kill()
                proc.wait()


def _wait(
    children: list[tuple[str | None, subprocess.Popen[bytes]]],
    stopping: Callable[[], bool],
) -> int:
    code = 0
    alive = list(children)
    tearing_down = False
    while alive:
        time.sleep(_POLL_SECONDS)
        for gpu, proc in list(alive):
            rc = proc.poll()
            if rc is None:
                continue
            alive.remove((gpu, proc))
            log.info("worker exited", extra={"gpu": gpu, "pid": proc.pid, "returncode": rc})
            if rc != 0 and code == 0:
                code = rc if rc > 0 else 128 - rc
            if not stopping() and not tearing_down and alive:
                # One worker died under us: stop the rest so the set restarts as a whole.
                log.error("worker exited unexpectedly, stopping the others", extra={"gpu": gpu})
                tearing_down = True
                code = code or 1
                for _g, other in alive:
                    if other.poll() is None:
                        other.send_signal(signal.SIGTERM)
    return code


def configure_gpu(*, mixed_precision: bool = False) -> dict[str, Any]:
    """Call inside a worker before building models: memory growth on every visible GPU,
    optional mixed_float16 policy. Returns what the run records as its hardware:
    {"device": "gpu" | "cpu", "gpu_names": [...], "mixed_precision": bool}.
    """
    # tf-keras (Keras 2) for tfmot: must be set before TensorFlow is first imported.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    names: list[str] = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(device, True)
        except RuntimeError:
            # Raised once the GPU was initialised; TF_FORCE_GPU_ALLOW_GROWTH covers that.
            log.debug("memory growth already fixed", extra={"device": device.name})
        details = tf.config.experimental.get_device_details(device)
        names.append(str(details.get("device_name", device.name)))
    if mixed_precision and names:
        import tf_keras

        tf_keras.mixed_precision.set_global_policy("mixed_float16")
    return {
        "device": "gpu" if names else "cpu",
        "gpu_names": names,
        "mixed_precision": bool(mixed_precision and names),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
