"""A same-budget control end to end (issue 19 item 2): `optiboard submit --control` against the
real API, one real Celery worker and TensorFlow; the pruning run and its control both finish,
and the control trained exactly as many epochs (pruning's default epochs, resolved by the worker
for both from the same steps per epoch)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import optiboard
from tests.integration.test_cli import _cli
from tests.stack import tiny_spec

DONE = re.compile(r"training done in [\d.]+ s over (\d+) epochs")


def _epochs_trained(run: dict[str, Any]) -> int:
    found = [int(m.group(1)) for line in run["log_tail"] if (m := DONE.search(line))]
    assert len(found) == 1, run["log_tail"]
    return found[0]


def test_a_pruning_run_and_its_control_train_the_same_epochs(live_stack: Any, tmp_path: Path) -> None:
    spec = tmp_path / "prune.json"
    spec.write_text(
        json.dumps(
            tiny_spec(
                "prune-with-control",
                experiment="controls-live",
                training={"epochs": 1, "batch_size": 64, "log_every_n_batches": 5, "seed": 4},
                techniques=[{"name": "pruning", "target_sparsity": 0.5}],  # default epochs: ≥ 1000 steps
                exports=["float32", "int8"],
            )
        )
    )
    out = _cli(
        ["submit", str(spec), "--control", "--wait"],
        Path(live_stack.settings.data_dir),
        OPTIBOARD_TOKEN=live_stack.token,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "succeeded" and result["control_run_id"]

    data = Path(live_stack.settings.data_dir)
    ob = optiboard.Client(live_stack.url, token=live_stack.token)
    try:
        twin = ob.wait(result["control_run_id"], timeout=600)
        run = ob.get_run(result["id"])
        assert twin["status"] == "succeeded", twin["error"]
        assert twin["control_of_run_id"] == run["id"] and run["control_run_id"] == twin["id"]
        assert ob.list_runs(control_of=run["id"]) and ob.list_runs(control_of=run["id"])[0]["id"] == twin["id"]
        assert any("recipe: seed_cnn adam · fine_tuning" in line for line in twin["log_tail"])
        assert any("phase: plain fine-tuning" in line for line in twin["log_tail"])
        # 1 training epoch + pruning's default (digits: ~19 batches of 64 an epoch → 53 epochs)
        epochs = _epochs_trained(run)
        assert epochs > 3 and _epochs_trained(twin) == epochs
        # the control is not pruned, the run is; both were measured the same way
        sparsity = {r["id"]: r["headline"] for r in (run, twin)}
        assert all(h and h["format"] == "tflite-int8" for h in sparsity.values())
        keras = {r["id"]: next(v for v in ob.variants(r["id"]) if v["format"] == "keras") for r in (run, twin)}
        assert keras[run["id"]]["sparsity"] > 0.45 and keras[twin["id"]]["sparsity"] < 0.05
        # `optiboard runs` marks both ends of the link
        listed = _cli(["runs", "--limit", "200"], data, OPTIBOARD_TOKEN=live_stack.token).stdout.splitlines()
        line = {int(x.split()[0]): x for x in listed[1:-1]}
        assert line[run["id"]].endswith(f"[control: #{twin['id']}]")
        assert line[twin["id"]].endswith(f"prune-with-control (control)  [control of #{run['id']}]")
    finally:
        ob.close()
