"""Start one Celery worker process per GPU and supervise them (`optiboard worker --gpus`).

Why one process per GPU rather than one worker seeing all GPUs: a training job then owns its
device outright (CUDA_VISIBLE_DEVICES pins it before TensorFlow loads), a crash or leak in
one job cannot take the other GPUs' jobs with it, and Celery's prefetch of one task per
process spreads queued runs over the GPUs. The parent process here never imports
TensorFlow: CUDA is not fork-safe, and the parent only supervises.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

from worker.gpus import parse_gpu_list

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2


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

    By default the child is `optiboard worker` without `--gpus` (python -m cli.main), so
    it configures logging and Celery exactly like a worker started by hand. With `app`, it is
    a bare `celery -A app worker` instead (used by tests with an app of their own).
    """
    name = worker_hostname(gpu, host)
    if app is None:
        return [
            sys.executable,
            "-m",
            "cli.main",
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
    # TensorFlow's memory growth, set in the environment so it holds before TensorFlow loads.
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
