"""The sandboxed half of an upload check (issue 17, items 2 and 3): run as its own process,
`python -m worker.engine.upload_check PATH FILENAME MAX_EXPANDED_BYTES`, started by
`backend.dispatch.model_check` with memory, CPU and wall-clock limits, in an empty working
directory. It never runs in the API process.

It repeats the static scan (`runspec.modelfile.scan_model_file`; the file is what is loaded,
whatever the API saw), loads the model with the library that wrote it and `safe_mode=True`
(Keras 3 with `keras.saving.load_model`, tf-keras with `tf_keras.models.load_model`; neither
can read the other's `.keras`), and computes the preflight (`worker.engine.preflight`).

The answer is one JSON object written to the original stdout (everything the libraries print
goes to stderr): {"ok": true, "preflight": {...}} or {"ok": false, "loc": [...], "msg": "..."}.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from runspec.modelfile import (
    COPY_NAME,
    KERAS,
    KERAS3,
    SAVED_MODEL,
    TFLITE,
    ModelRefused,
    model_limits,
    scan_model_file,
)


def _answer(out: TextIO, payload: dict[str, Any]) -> None:
    out.write(json.dumps(payload, default=str))
    out.flush()


def check(path: Path, filename: str, max_expanded_bytes: int) -> dict[str, Any]:
    """The preflight of the uploaded file at `path` (see worker.engine.preflight for its keys).
    Raises ModelRefused naming what is at fault."""
    started = time.monotonic()
    scan = scan_model_file(path, filename, model_limits(max_expanded_bytes))
    from worker.engine import preflight

    if scan.format == KERAS:
        if scan.keras_flavour == KERAS3:
            # The tf-keras copy goes in the working directory, which the API owns and reads back.
            result = preflight.keras3_preflight(path, copy_to=Path.cwd() / COPY_NAME)
        else:
            result = preflight.tf_keras_preflight(path)
        result["keras_version"] = scan.keras_version
    elif scan.format == SAVED_MODEL:
        result = preflight.saved_model_preflight(path)
    elif scan.format == TFLITE:
        result = preflight.tflite_preflight(path)
    else:  # pragma: no cover - scan_model_file returns only these
        raise ModelRefused((), f"unknown format {scan.format}")
    result["format"] = scan.format
    result["keras_flavour"] = scan.keras_flavour
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def main(argv: list[str]) -> int:
    # The answer goes to a private copy of fd 1; fd 1 itself becomes stderr, so nothing the
    # libraries print (Python or C++) can corrupt or forge it.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    path, filename, max_bytes = Path(argv[0]), argv[1], int(argv[2])
    try:
        _answer(out, {"ok": True, "preflight": check(path, filename, max_bytes)})
    except ModelRefused as exc:
        _answer(out, {"ok": False, "loc": list(exc.loc), "msg": str(exc), "status": exc.status})
    except Exception as exc:  # whatever a hostile or broken file makes the libraries raise
        traceback.print_exc()
        if type(exc).__name__ in ("MemoryError", "ResourceExhaustedError"):  # RLIMIT_DATA reached
            _answer(
                out,
                {"ok": False, "loc": [], "msg": "loading the model needed more memory than the limit; it was stopped"},
            )
            return 0
        message = str(exc).splitlines()[0][:500] if str(exc) else ""
        _answer(out, {"ok": False, "loc": [], "msg": f"the model could not be loaded: {type(exc).__name__}: {message}"})
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    sys.exit(main(sys.argv[1:]))
