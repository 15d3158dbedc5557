"""The optiboard-free baseline of bench/overhead.py: the same recipe through the same engine code
(worker.engine.job.run_job: train, save the Keras model, convert to TFLite float32/int8, measure
every variant with the same harness), in one warm Python process, with a reporter that
does nothing. Driven over stdin by bench/overhead.py: each line is a RunSpec JSON; the answer is
one JSON line {"seconds": ..., "cpu_seconds": ...} (this process's CPU, all threads).

    echo '{"dataset": {"name": "digits"}, "exports": ["float32", "int8"]}' | .venv/bin/python bench/plain_recipe.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from worker.engine import tfsetup  # noqa: E402,I001 - sets TF_USE_LEGACY_KERAS before TF loads
from runspec.spec import RunSpec  # noqa: E402
from worker.engine.contract import VariantResult  # noqa: E402
from worker.engine.job import run_job  # noqa: E402


class NullReporter:
    def log_metrics(self, points: list[tuple[str, int, float]]) -> None:
        pass

    def progress(self, fraction: float, eta_seconds: float | None = None) -> None:
        pass

    def should_stop(self) -> bool:
        return False

    def add_variant(self, variant: VariantResult) -> None:
        pass

    def log(self, message: str) -> None:
        pass


def _no_resolver(i: int) -> Path:
    raise LookupError("the plain baseline runs no distillation, optimize or upload recipes")


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = RunSpec.model_validate_json(line)
        with tempfile.TemporaryDirectory(prefix="ob-plain-") as tmp:
            t, cpu = time.perf_counter(), time.process_time()
            run_job(spec, NullReporter(), workdir=Path(tmp), resolve_model=_no_resolver, resolve_upload=_no_resolver)
            seconds = time.perf_counter() - t
        tfsetup.release_memory()  # what the worker does between jobs: outside the wall clock,
        cpu = time.process_time() - cpu  # inside the CPU figure (the worker's includes it too)
        print(json.dumps({"seconds": seconds, "cpu_seconds": cpu}), flush=True)


if __name__ == "__main__":
    main()
