"""A digits study end to end on the real stack (API with its study loop, one real Celery
worker, Redis, SQLite): a tiny baseline, then a study of three short pruning trials, driven by
the Python client and read by the CLI; every trial is an ordinary run that finished and was
told once, and the study finishes on its trial budget."""

from __future__ import annotations

import subprocess
import sys

import optiboard
from tests.conftest import Stack
from tests.stack import REPO, tiny_spec


def test_a_digits_study_runs_its_trials_to_completion(live_stack: Stack) -> None:
    ob = optiboard.Client(live_stack.url, token=live_stack.token)
    try:
        base = ob.submit(tiny_spec("study-baseline", exports=["float32"]))
        assert ob.wait(base["id"], timeout=240)["status"] == "succeeded"
        study = ob.create_study(
            {
                "name": "digits-live",
                "baseline_run_id": base["id"],
                "objectives": ["gzip_bytes", "accuracy"],
                "constraint": {"max_drop": 50},  # any sane model passes: this tests the machinery
                "search_space": {
                    "chains": ["pruning"],
                    "exports": ["int8"],
                    "pruning": {"epochs": {"low": 1, "high": 1}, "target_sparsity": {"low": 0.5, "high": 0.8}},
                },
                "budget": {"max_trials": 3},
                "strategy": "random",
                "measurement_protocol": "off",
                "seed": 1,
            }
        )
        assert study["status"] == "queued"
        done = ob.wait_study(study["id"], timeout=400)
        assert done["status"] == "finished" and done["stop_reason"] == "trial budget spent"
        trials = done["trials"]
        assert [t["number"] for t in trials] == [0, 1, 2]
        assert all(t["state"] == "complete" and t["run_status"] == "succeeded" for t in trials), trials
        assert all(t["feasible"] for t in trials)
        for t in trials:
            run = ob.get_run(t["run_id"])
            assert f"study:{study['id']}" in run["tags"] and run["spec"]["model"]["init_from_run_id"] == base["id"]
            assert run["headline"]["format"] == "tflite-int8"
            assert t["values"]["gzip_bytes"] == run["headline"]["gzip_bytes"]
        assert done["best"][0]["objective"] == "gzip_bytes" and done["best"][0]["download"]
        assert done["hypervolume"][-1]["hypervolume"] > 0 and done["budget"]["used"]["worker_minutes"] > 0
        assert len(ob.list_runs(tag=f"study:{study['id']}")) == 3  # no duplicate trial runs
        linked = ob.list_runs(study_id=study["id"])
        assert sorted(r["trial_number"] for r in linked) == [0, 1, 2]
        assert {r["id"] for r in linked} == {t["run_id"] for t in trials}
        exported = ob.study_trials_csv(study["id"]).splitlines()
        assert exported[0].startswith("number,run_id,state,feasible,") and len(exported) == 4
    finally:
        ob.close()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "studies",
            "show",
            str(study["id"]),
            "--url",
            live_stack.url,
            "--token",
            live_stack.token,
        ],
        cwd=REPO,
        env=live_stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert f"study {study['id']} finished: digits-live" in out.stdout and "best gzip_bytes: trial" in out.stdout
