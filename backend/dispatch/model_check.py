"""Loading an uploaded model in a sandbox process (issue 17, item 2): never in the API process.

`SandboxChecker.check(path, filename)` runs `python -m worker.engine.upload_check` (named as a
string: the backend never imports the engine) in a new session, in an empty temporary working
directory whose path is also its HOME and KERAS_HOME, with
- RLIMIT_DATA (`memory_mb`): private writable memory (heap, anonymous mappings: every tensor), so
  a model that allocates without bound fails. Not RLIMIT_AS: TensorFlow reserves address space
  it never uses (thread stacks, malloc arenas: more the more cores), so an address-space limit
  fails good models on big machines (it needs ~2 GiB on 2 cores; under RLIMIT_DATA they load in
  512 MiB);
- RLIMIT_CPU (`cpu_s`): the kernel kills it with SIGXCPU past that much CPU time;
- RLIMIT_FSIZE (`max_file_bytes`) and RLIMIT_CORE 0: no large files, no core dumps;
- a wall-clock timeout (`timeout_s`) after which its whole process group is SIGKILLed;
and reads its one JSON answer (at most `MAX_ANSWER_BYTES`). At most `concurrency` checks run at
once (each loads TensorFlow: ~0.5 GB); the others wait.

A refusal comes back as `runspec.modelfile.ModelRefused` (the loader's own, or one made here for
a crash, a limit or a timeout); the caller turns it into a 4xx.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from runspec.modelfile import COPY_NAME, ModelRefused

CHECKER_MODULE = "worker.engine.upload_check"
MAX_ANSWER_BYTES = 8 << 20
# Environment variables the child inherits; everything else (tokens, database URLs) is dropped.
PASSED_ENV = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS")


# The child's first statements: its limits are set before it imports anything of ours or reads
# the file (a preexec_fn would do it between fork and exec, which is unsafe in the API's threads).
BOOTSTRAP = f"""
import resource, runpy, sys
memory, cpu, fsize = (int(v) for v in sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
sys.argv = [sys.argv[0], *sys.argv[4:]]
runpy.run_module("{CHECKER_MODULE}", run_name="__main__", alter_sys=True)
"""


class SandboxChecker:
    """Runs upload checks in limited child processes (see the module docstring).

    memory_mb: RLIMIT_DATA in MiB; cpu_s: RLIMIT_CPU in seconds; timeout_s: wall clock in seconds;
    max_expanded_bytes: the archive bound the child checks again; concurrency: checks at once.
    """

    def __init__(
        self, *, memory_mb: int, cpu_s: int, timeout_s: float, max_expanded_bytes: int, concurrency: int = 1
    ) -> None:
        self.memory_mb, self.cpu_s, self.timeout_s = memory_mb, cpu_s, timeout_s
        self.max_expanded_bytes = max_expanded_bytes
        self._slots = threading.BoundedSemaphore(concurrency)

    def check(self, path: Path, filename: str, *, copy_to: Path | None = None) -> dict[str, Any]:
        """The preflight of the file at `path` (a dict, see worker.engine.preflight). Raises
        ModelRefused for a refusal, a crash, or a memory, CPU or time limit reached.

        A Keras 3 model's tf-keras copy, when the checker made one, is moved to `copy_to` (the
        preflight's `tf_keras_copy.status` is "yes"); without `copy_to` it is discarded."""
        with self._slots, tempfile.TemporaryDirectory(prefix="optiboard-check-") as work:
            env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
            env.update(
                HOME=work,
                KERAS_HOME=work,
                TMPDIR=work,
                TF_USE_LEGACY_KERAS="1",
                TF_CPP_MIN_LOG_LEVEL="2",
                CUDA_VISIBLE_DEVICES="",
                PYTHONDONTWRITEBYTECODE="1",
                MALLOC_ARENA_MAX="2",
            )
            if "PYTHONPATH" not in env:  # our code, as the API imports it
                env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    BOOTSTRAP,
                    str(self.memory_mb * 2**20),
                    str(self.cpu_s),
                    str(4 * self.max_expanded_bytes + (64 << 20)),
                    str(path.resolve()),
                    filename,
                    str(self.max_expanded_bytes),
                ],
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            try:
                out, err = proc.communicate(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise ModelRefused(
                    (), f"loading the model took longer than {self.timeout_s:g} s; it was stopped"
                ) from None
            finally:
                _kill_group(proc)  # nothing it started outlives the check
            preflight = _answer(proc.returncode, out, err, self.memory_mb, self.cpu_s)
            copy = preflight.get("tf_keras_copy")
            if isinstance(copy, dict) and copy.get("status") == "yes":
                made = Path(work) / COPY_NAME
                # The child ran our code on hostile data: take a regular file only, never a link.
                if copy_to is None or not made.is_file() or made.is_symlink():
                    if copy_to is not None:
                        raise ModelRefused((), "the model checker said it made a tf-keras copy but none is there")
                else:
                    shutil.move(made, copy_to)
        return preflight


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _answer(returncode: int, out: bytes, err: bytes, memory_mb: int, cpu_s: int) -> dict[str, Any]:
    if returncode == -signal.SIGXCPU:
        raise ModelRefused((), f"loading the model used more than {cpu_s} s of CPU time; it was stopped")
    if returncode == -signal.SIGKILL and not out:
        raise ModelRefused((), f"loading the model was killed by a limit ({cpu_s} s of CPU, {memory_mb} MiB of memory)")
    try:
        answer = json.loads(out[:MAX_ANSWER_BYTES]) if out else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        text = err[-8192:].decode(errors="replace")
        if any(sign in text for sign in ("MemoryError", "bad_alloc", "Cannot allocate memory", "out of memory")):
            raise ModelRefused((), f"loading the model needed more than {memory_mb} MiB; it was stopped")
        last = (text.strip().splitlines() or [""])[-1]
        raise ModelRefused((), f"the model checker failed (exit status {returncode}): {last[:300]}")
    if not answer.get("ok"):
        raise ModelRefused(
            tuple(answer.get("loc") or ()), str(answer.get("msg")), status=int(answer.get("status", 422))
        )
    preflight = answer.get("preflight")
    if not isinstance(preflight, dict):
        raise ModelRefused((), "the model checker gave no preflight")
    return preflight
