"""The CLI as a user meets it (issue 16 item 9): the server's address comes from the data
directory next to the token, failures are one line, a 422 is `field: message` lines, and
`submit --wait` shows one line per change instead of one per poll."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.stack import REPO, free_port, tiny_spec


def _cli(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPTIBOARD_")}
    clean.update({"OPTIBOARD_DATA_DIR": str(data_dir), **env})
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=REPO, env=clean, capture_output=True, text=True, timeout=300
    )


def test_runs_finds_the_server_from_the_data_directory(live_stack: Any) -> None:
    data = Path(live_stack.settings.data_dir)
    assert (data / "url").read_text().strip() == live_stack.url  # written by `optiboard api`
    run = live_stack.client.submit(tiny_spec("cli-listed", exports=["int8"]))
    out = _cli(["runs", "--limit", "200"], data, OPTIBOARD_TOKEN=live_stack.token)
    assert out.returncode == 0, out.stderr
    assert any(
        line.split()[0] == str(run["id"]) and line.rstrip().endswith("cli-listed")
        for line in out.stdout.splitlines()[1:-1]
    )
    live_stack.client.wait_terminal(run["id"], timeout=600)


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    (tmp_path / "url").write_text(f"http://127.0.0.1:{port}\n")
    (tmp_path / "token").write_text("ob_x\n")
    out = _cli(["runs"], tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"optiboard: cannot reach http://127.0.0.1:{port} (Connection refused): is `optiboard up` running? "
        "use --url or OPTIBOARD_URL"
    ]
    assert out.stdout == ""


def test_a_refused_spec_is_field_message_lines(live_stack: Any, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\ntraining: {batch_size: 0, optimizer: {learning_rate: -1}}\n")
    out = _cli(["submit", str(spec)], Path(live_stack.settings.data_dir), OPTIBOARD_TOKEN=live_stack.token)
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert lines[0] == "optiboard: the server refused the request (422):"
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == [
        "training.batch_size",
        "training.optimizer.learning_rate",
    ]
    assert all(": " in line for line in lines[1:]) and "Traceback" not in out.stderr


def test_submit_wait_prints_a_line_per_change_and_the_headline(live_stack: Any, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            tiny_spec(
                "cli-wait",
                exports=["float32", "int8"],
                training={"epochs": 3, "batch_size": 16, "log_every_n_batches": 5},
            )
        )
    )
    out = _cli(["submit", str(spec), "--wait"], Path(live_stack.settings.data_dir), OPTIBOARD_TOKEN=live_stack.token)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "succeeded" and result["headline"]["format"] == "tflite-int8"
    progress = out.stderr.splitlines()
    assert progress and len(progress) == len(set(progress)) <= 8  # not one line per poll
    assert progress[-1] == f"run {result['id']} cli-wait · succeeded"
    assert all(line.startswith(f"run {result['id']} cli-wait · ") for line in progress)
