"""System metrics of one job: the job process's CPU use and resident memory (and, where NVIDIA
GPUs and pynvml are present, each visible GPU's utilisation and memory), sampled by a thread
every `interval_s` seconds and logged through the reporter as metric points under `system/`.

As MLflow's system-metrics monitor does (mlflow.system_metrics: psutil, pynvml, one sample every
10 s by default, keys under `system/`), with two differences:

- the step of a system point is **whole seconds since the job started** (strictly increasing:
  two samples in one second take consecutive steps), not a sample counter, so a chart's x axis
  reads as time without any lookup and the points never share the training step's (run, key,
  step) slots; the run page reads them with their own cursor.
- what is measured is the job's process (psutil.Process().cpu_percent: percent of one core,
  so up to 100 × cores; memory_info().rss: bytes), not the whole machine.

Keys: `system/cpu_percent` (%), `system/rss_bytes` (bytes) and, per visible GPU i,
`system/gpu_{i}_utilization_percent` (%) and `system/gpu_{i}_memory_used_bytes` (bytes). On a
machine without a GPU, or without pynvml, no GPU key is logged.

The peak resident set size of the job (`peak_rss_bytes`) is the kernel's high-water mark VmHWM
(proc(5)) after resetting it at job start by writing "5" to /proc/self/clear_refs (Linux ≥ 4.0):
it catches a spike between two samples, and, unlike getrusage's ru_maxrss, it is not the warm
worker process's lifetime peak. Where the reset is refused, it falls back to the largest sampled
RSS (which can miss a spike shorter than the interval).

The monitor never breaks or slows the job: each failure is swallowed with one log line, and the
thread only reads /proc and NVML (a few hundred microseconds per sample).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

PREFIX = "system/"
MAX_INTERVAL_S = 10.0

LogMetrics = Callable[[list[tuple[str, int, float]]], None]


def _status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmHWM, VmRSS), or None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmHWM") is not None
    except OSError:
        return False


def _gpu_handles() -> list[tuple[int, Any]]:
    """(index, NVML handle) of every GPU NVML sees; [] without pynvml or without a GPU."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
        indices = list(range(pynvml.nvmlDeviceGetCount()))
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and all(x.strip().isdigit() for x in visible.split(",") if x.strip()):
            # a worker per GPU (cli.workers) sees only its own: report that one
            indices = [i for i in indices if str(i) in {x.strip() for x in visible.split(",")}]
        return [(i, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in indices]
    except Exception as e:  # NVMLError: no driver, no device
        log.info("no GPU metrics: %s", e)
        return []


class SystemMonitor:
    """Samples the current process every `interval_s` (≤ MAX_INTERVAL_S) seconds on a daemon
    thread and hands the points to `log_metrics` ([(key, step, value)], the Reporter's call).
    `start()` resets the peak-RSS mark and takes the first sample at once; `stop()` takes a last
    sample and returns; `peak_rss_bytes` is the job's own peak (see the module docstring)."""

    def __init__(self, log_metrics: LogMetrics, *, interval_s: float = MAX_INTERVAL_S) -> None:
        if not 0 < interval_s <= MAX_INTERVAL_S:
            raise ValueError(f"interval_s must be in (0, {MAX_INTERVAL_S}], got {interval_s}")
        self._log_metrics, self.interval_s = log_metrics, interval_s
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="system-metrics", daemon=True)
        self._started = 0.0
        self._last_step = -1
        self._max_rss = 0
        self._hwm_reset = False
        self._gpus: list[tuple[int, Any]] = []
        self._failed = False
        self.samples = 0

    def start(self) -> SystemMonitor:
        self._hwm_reset = reset_peak_rss()
        self._started = time.monotonic()
        self._process.cpu_percent(None)  # the first call only sets the reference point
        self._gpus = _gpu_handles()
        self._thread.start()
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    @property
    def peak_rss_bytes(self) -> int:
        """The job's peak resident set size in bytes: VmHWM since start() where it could be
        reset, else the largest sampled RSS."""
        hwm = _status_kib("VmHWM") if self._hwm_reset else None
        return max(self._max_rss, hwm * 1024 if hwm is not None else 0)

    def sample(self) -> None:
        """One sample logged now; a failure is logged once and never raised."""
        try:
            step = max(int(time.monotonic() - self._started), self._last_step + 1)
            rss = int(self._process.memory_info().rss)
            self._max_rss = max(self._max_rss, rss)
            points = [
                (PREFIX + "cpu_percent", step, float(self._process.cpu_percent(None))),
                (PREFIX + "rss_bytes", step, float(rss)),
            ]
            points += self._gpu_points(step)
            self._log_metrics(points)
            self._last_step = step
            self.samples += 1
        except Exception:
            if not self._failed:
                self._failed = True
                log.warning("system metrics: sampling failed; the job goes on without them", exc_info=True)

    def _gpu_points(self, step: int) -> list[tuple[str, int, float]]:
        if not self._gpus:
            return []
        import pynvml

        out: list[tuple[str, int, float]] = []
        for i, handle in self._gpus:
            out.append(
                (f"{PREFIX}gpu_{i}_utilization_percent", step, float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            )
            out.append((f"{PREFIX}gpu_{i}_memory_used_bytes", step, float(pynvml.nvmlDeviceGetMemoryInfo(handle).used)))
        return out

    def _loop(self) -> None:
        self.sample()
        while not self._stop.wait(self.interval_s):
            self.sample()
