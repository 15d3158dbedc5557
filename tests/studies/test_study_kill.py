"""A study survives its processes being killed (issue 20 item 2): with trials in flight, the API
(whose thread runs the study loop) and the worker are SIGKILLed, then started again. The study
resumes from the database alone and ends on its trial budget with every trial number once, one run
per trial, each told once, and the interrupted trial's run retried under the same trial."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import optiboard
from backend.store.migrate import upgrade
from tests.conftest import make_token, reserved_redis_db
from tests.stack import Api, Worker, stack_env, stop, tiny_spec, wait_for

pytestmark = pytest.mark.slow


def test_killing_the_api_and_the_worker_mid_study_loses_and_repeats_no_trial(tmp_path: Path) -> None:
    with reserved_redis_db() as redis_url:
        db = f"sqlite:///{tmp_path / 'optiboard.db'}"
        env = stack_env(
            data_dir=tmp_path,
            database_url=db,
            redis_url=redis_url,
            OPTIBOARD_REAPER_INTERVAL_S="1",
            OPTIBOARD_HEARTBEAT_TIMEOUT_S="8",
            OPTIBOARD_STUDY_INTERVAL_S="1",
        )
        upgrade(db)
        token = make_token(db)
        api = Api(env, log=tmp_path / "api-1.log")
        worker = Worker(env, log=tmp_path / "worker-1.log", name="kill1@%h")
        ob = optiboard.Client(api.url, token=token)
        try:
            base = ob.submit(tiny_spec("kill-baseline", exports=["float32"]))
            assert ob.wait(base["id"], timeout=240)["status"] == "succeeded"
            study = ob.create_study(
                {
                    "name": "kill-me",
                    "baseline_run_id": base["id"],
                    "constraint": {"max_drop": 50},
                    "search_space": {
                        "chains": ["pruning"],
                        "exports": ["int8"],
                        "pruning": {"epochs": {"low": 3, "high": 3}, "target_sparsity": {"low": 0.5, "high": 0.8}},
                    },
                    "budget": {"max_trials": 3},
                    "strategy": "random",
                    "measurement_protocol": "off",
                    "seed": 3,
                }
            )

            def training_trial() -> int | None:
                runs = ob.list_runs(study_id=study["id"])
                return next((r["id"] for r in runs if r["status"] == "running" and r["progress"] > 0), None)

            interrupted = wait_for(training_trial, timeout=240, what="a trial in flight")
            before = ob.get_study(study["id"])
            ob.close()
            stop(api.proc, sig=signal.SIGKILL)
            worker.stop(sig=signal.SIGKILL)

            api = Api(env, log=tmp_path / "api-2.log")
            worker = Worker(env, log=tmp_path / "worker-2.log", name="kill2@%h")
            ob = optiboard.Client(api.url, token=token)
            done = ob.wait_study(study["id"], timeout=600)
            linked = ob.list_runs(study_id=study["id"])
            retried = ob.get_run(interrupted)
        finally:
            ob.close()
            api.stop()
            worker.stop()

    assert done["status"] == "finished" and done["stop_reason"] == "trial budget spent", done
    trials = done["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]  # none lost, none repeated
    assert all(t["state"] == "complete" and t["run_status"] == "succeeded" for t in trials), trials
    assert sorted(r["trial_number"] for r in linked) == [0, 1, 2]  # one run per trial
    assert {r["id"] for r in linked} == {t["run_id"] for t in trials}
    # the trials asked before the kill kept their numbers and runs
    asked = {t["number"]: t["run_id"] for t in before["trials"]}
    assert interrupted in asked.values()
    assert all(trials[n]["run_id"] == run_id for n, run_id in asked.items())
    # the run the worker's death interrupted was reaped and run again: the same run, attempt 2
    assert retried["status"] == "succeeded" and retried["attempt"] == 2, retried
