"""Repeats end to end: a digits run submitted with repeats 3 is trained by a real Celery worker
as three runs over seeds 0, 1, 2, and the compare route aggregates the group they form."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Stack
from tests.integration.test_cli import _cli
from tests.stack import tiny_spec


def test_repeats_train_three_seeds_and_the_group_has_an_interval(live_stack: Stack) -> None:
    c = live_stack.client
    spec = tiny_spec("repeats-live", repeats=3, training={"epochs": 1, "batch_size": 64, "log_every_n_batches": 5})
    created = c.submit(spec)
    ids = created["group_run_ids"]
    # at least these three: the session's stack is shared, and another test may have trained
    # the same recipe (the group key ignores names and experiments)
    assert len(ids) == 3 and created["group_size"] >= 3
    done = [c.wait_terminal(i, timeout=300) for i in ids]
    assert [r["status"] for r in done] == ["succeeded"] * 3, [r["error"] for r in done]
    assert [r["spec"]["training"]["seed"] for r in done] == [0, 1, 2]
    data = c.http.get("/api/compare", params={"runs": ",".join(map(str, ids)), "groups": "true"}).json()
    rows = [r for r in data["groups"]["rows"] if r["format"] == "tflite-float32"]
    assert len(rows) == 1
    g = rows[0]
    assert g["run_ids"] == ids and g["accuracy_n"] == 3
    accs = [r["accuracy"] for r in data["rows"] if r["format"] == "tflite-float32"]
    assert abs(g["accuracy"] - sum(accs) / 3) < 1e-12
    assert g["accuracy_ci_low"] <= g["accuracy"] <= g["accuracy_ci_high"]
    # three seeds of one recipe train differently: a real spread, so a real interval
    assert len(set(accs)) > 1 and g["accuracy_half_width"] > 0
    assert g["latency_p50_ms_n"] == 3 and g["params_half_width"] == 0.0  # same architecture
    loss = data["figures"]["loss"]["data"]
    assert [t["meta"]["role"] for t in loss].count("band") >= 2  # loss and val_loss bands
    # how soon the interval is there after the last run ends is a figure of bench/seed_groups.py


def test_client_and_cli_submit_repeats_and_read_groups(live_stack: Stack, tmp_path: Path) -> None:
    import optiboard

    ob = optiboard.Client(live_stack.url, token=live_stack.token)
    # log_every_n_batches 4: another recipe than the test above (names do not make a group)
    spec = tiny_spec("repeats-client", training={"epochs": 1, "batch_size": 64, "log_every_n_batches": 4})
    first = ob.submit(spec, repeats=2)
    ids = first["group_run_ids"]
    assert len(ids) == 2 and first["group_size"] == 2
    for i in ids:
        assert ob.wait(i, timeout=300)["status"] == "succeeded"
    groups = ob.compare_groups(ids)
    row = next(r for r in groups["rows"] if r["format"] == "tflite-float32")
    assert row["run_ids"] == ids and row["accuracy_n"] == 2 and row["accuracy_ci_low"] is not None

    data = Path(live_stack.settings.data_dir)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({**spec, "name": "repeats-cli"}))
    out = _cli(["submit", str(path), "--repeats", "2"], data, OPTIBOARD_TOKEN=live_stack.token)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].endswith("repeats-cli [seed=0]") and lines[1].endswith("repeats-cli [seed=1]")
    assert "optiboard compare --groups" in lines[2]
    shown = _cli(["compare", ",".join(map(str, ids)), "--groups"], data, OPTIBOARD_TOKEN=live_stack.token)
    assert shown.returncode == 0, shown.stderr
    assert "±" in shown.stdout and "repeats-client" in shown.stdout and "baseline" in shown.stdout
    as_json = _cli(["compare", ",".join(map(str, ids)), "--groups", "--json"], data, OPTIBOARD_TOKEN=live_stack.token)
    assert json.loads(as_json.stdout)["rows"][0]["n_runs"] == 2
