"""Issue 16 item 10: the TFLite converter's C++ chatter ("fully_quantize: 0, inference_type: 6,
...", printed to the process's stderr on every int8 conversion) never reaches a worker's
output, while anything else the converter prints (a real warning or error) still does."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.stack import REPO
from worker.engine.export import to_tflite
from worker.engine.measure import LiteRunner
from worker.engine.native_output import CONVERTER_CHATTER, forward_output
from worker.engine.tfsetup import keras


def test_an_int8_conversion_prints_no_converter_chatter(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    samples = np.random.default_rng(0).random((10, 8), dtype=np.float32)
    capfd.readouterr()
    to_tflite(model, "int8", tmp_path / "m.tflite", representative=samples)
    out, err = capfd.readouterr()  # captured at the file descriptors, where the C++ core writes
    assert "fully_quantize" not in out + err
    assert (tmp_path / "m.tflite").read_bytes()[4:8] == b"TFL3"
    # measuring it: LiteRT announces its XNNPACK delegate on every tensor allocation
    runner = LiteRunner(tmp_path / "m.tflite")
    capfd.readouterr()
    assert runner.predict(samples).shape == (10, 4)
    out, err = capfd.readouterr()
    assert "XNNPACK" not in out + err


def test_only_the_known_chatter_is_dropped() -> None:
    stream = io.StringIO()
    forward_output(
        "fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8\n"
        "\n"
        "error: 'tfl.custom' op is neither a custom op nor a flex op\n"
        "note: fully_quantize: 1 mentioned mid-line stays\n",
        CONVERTER_CHATTER,
        stream,
    )
    assert stream.getvalue() == (
        "error: 'tfl.custom' op is neither a custom op nor a flex op\nnote: fully_quantize: 1 mentioned mid-line stays\n"
    )
    quiet = io.StringIO()
    forward_output("fully_quantize: 1, inference_type: 9, input_inference_type: FLOAT32\n", CONVERTER_CHATTER, quiet)
    assert quiet.getvalue() == ""


def test_importing_the_engine_prints_no_import_chatter() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    done = subprocess.run(
        [sys.executable, "-c", "import worker.engine.tfsetup"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for chatter in ("absl::InitializeLog", "oneDNN custom operations", "Could not find cuda drivers"):
        assert chatter not in done.stderr, done.stderr
