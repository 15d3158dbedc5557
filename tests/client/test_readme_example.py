"""The README's callback example works as written, with Keras 3 and with tf-keras: the code
block after `<!-- readme-callback-example -->` runs in a fresh Python process against the real
API (only the `import keras` line is swapped for `import tf_keras as keras`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import optiboard
from tests.conftest import Stack

REPO = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    after = text.split("<!-- readme-callback-example -->", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


@pytest.mark.parametrize("keras_import", ["import keras", "import tf_keras as keras"])
def test_readme_callback_example_runs(live_stack: Stack, keras_import: str) -> None:
    code = readme_example()
    assert code.startswith("import keras ")
    code = code.replace("import keras ", keras_import + " ", 1)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OPTIBOARD_URL": live_stack.url,
        "OPTIBOARD_TOKEN": live_stack.token,
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop("TF_USE_LEGACY_KERAS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run_id, status = out.stdout.split()[-2:]
    assert status == "succeeded"
    with optiboard.Client(live_stack.url, token=live_stack.token) as ob:
        series = ob.metrics(int(run_id), max_points=100_000)
    assert series["epoch"]["values"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len(series["loss"]["steps"]) == 5 * 51  # ~1618 training images, batch 32: 51 batches
    assert {"val_loss", "val_accuracy", "train_accuracy", "lr"} <= set(series)
