"""Peak memory of loading and running a .tflite file, measured in a fresh process.

A new Python process (this interpreter, `sys.executable`, without TensorFlow) imports NumPy and
LiteRT, reads its resident set size (VmRSS in /proc/self/status), resets the kernel's peak-RSS
mark (writing "5" to /proc/self/clear_refs, Linux ≥ 4.0, proc(5)), then constructs the
interpreter with the given threads, allocates tensors and invokes it `runs` times on a zero
batch-1 input. The footprint is VmHWM (peak RSS since the reset) minus the RSS before loading:
the model's bytes, the arena, the delegate's packed weights and whatever the runtime allocated
for them, as the operating system counted resident pages. Where clear_refs cannot be written,
the peak is ru_maxrss (getrusage(2), KiB on Linux) after minus before, which can only
under-count (an import peak above the run's peak hides it); the method used is returned.
A fresh process keeps the worker's own TensorFlow and earlier variants out of the figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

_CHILD = r"""
import json, resource, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)

path, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
before_rss = status("VmRSS")
before_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    method = "VmHWM after clear_refs - VmRSS before"
except OSError:
    method = "ru_maxrss delta"
interp = Interpreter(model_path=path, num_threads=threads)
interp.allocate_tensors()
inp = interp.get_input_details()[0]
interp.set_tensor(inp["index"], np.zeros(inp["shape"], dtype=inp["dtype"]))
for _ in range(runs):
    interp.invoke()
if method.startswith("VmHWM"):
    peak = status("VmHWM") - before_rss
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before_max
print(json.dumps({"peak_memory_bytes": max(int(peak), 0), "baseline_rss_bytes": before_rss, "method": method}))
"""


def peak_memory(path: Path, *, threads: int = 1, runs: int = 10, timeout_s: float = 60.0) -> dict[str, Any]:
    """{"peak_memory_bytes": int, "baseline_rss_bytes": int, "method": str} for the .tflite at
    `path` (see the module docstring). Raises RuntimeError when the child fails or times out."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), str(threads), str(runs)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"the memory probe of {path.name} took over {timeout_s:.0f} s") from e
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the memory probe of {path.name} failed: {done.stderr.strip()[-500:]}")
    return json.loads(lines[-1])
