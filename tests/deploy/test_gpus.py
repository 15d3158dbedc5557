"""worker.gpus and cli.workers: GPU lists, and real Celery worker processes started one per (fake) GPU.

GPUs are the one thing faked here: there is none on this machine, so "GPU 0" and "GPU 1"
are just the CUDA_VISIBLE_DEVICES values each real worker process must receive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from cli.workers import worker_argv, worker_env, worker_hostname
from tests.deploy.conftest import FAKE_GPUS
from worker.gpus import parse_gpu_list, parse_nvidia_smi

pytestmark = [pytest.mark.services]  # tier: see tests/conftest.py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

NVIDIA_SMI_TWO_GPUS = """\
0, NVIDIA A100-SXM4-40GB, 40960, GPU-6f1e9c1a-0000-0000-0000-000000000000
1, NVIDIA A100-SXM4-40GB, 40960, GPU-6f1e9c1a-0000-0000-0000-000000000001
"""


def test_parse_nvidia_smi() -> None:
    gpus = parse_nvidia_smi(NVIDIA_SMI_TWO_GPUS + "\nNo devices were found\n")
    assert [g.index for g in gpus] == ["0", "1"]
    assert gpus[0].name == "NVIDIA A100-SXM4-40GB"
    assert gpus[1].memory_mib == 40960
    assert gpus[1].uuid is not None and gpus[1].uuid.endswith("0001")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0,1", ["0", "1"]),
        (" 2 , 3 ", ["2", "3"]),
        ("GPU-abc", ["GPU-abc"]),
        ("", []),
        ("none", []),
        ("cpu", []),
        (None, []),
    ],
)
def test_parse_gpu_list(text: str | None, expected: list[str]) -> None:
    assert parse_gpu_list(text) == expected


def test_parse_gpu_list_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_gpu_list("0,0")


def test_all_without_a_driver_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi: the CPU-only machine here
    assert parse_gpu_list("all") == []


def test_worker_env_pins_one_gpu_and_hides_gpus_from_cpu_workers() -> None:
    env = worker_env("1", {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "0,1"})
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert env["TF_USE_LEGACY_KERAS"] == "1"
    assert worker_env(None, {})["CUDA_VISIBLE_DEVICES"] == "-1"


def test_worker_argv_runs_the_optiboard_worker_named_after_its_gpu() -> None:
    argv = worker_argv("0", queues=["train", "optimize"], host="boxA", concurrency=2)
    assert argv[:4] == [sys.executable, "-m", "cli.main", "worker"]
    assert argv[argv.index("--name") + 1] == "gpu0@boxA"
    assert argv[argv.index("--queues") + 1] == "train,optimize"
    assert argv[argv.index("--concurrency") + 1] == "2"
    assert "--gpus" not in argv, "a child must run one worker, not spawn more"
    assert worker_hostname(None, "boxA") == "cpu@boxA"


def test_worker_argv_with_an_app_runs_celery_directly() -> None:
    argv = worker_argv("1", queues=["q"], host="boxA", app="echo_app")
    assert argv[:6] == [sys.executable, "-m", "celery", "-A", "echo_app", "worker"]
    assert argv[argv.index("--hostname") + 1] == "gpu1@boxA"


# --- real worker processes ---------------------------------------------------------------


def _start_supervisor(broker: str, gpus: str, host: str) -> subprocess.Popen[bytes]:
    """spawn_workers in a process of its own, as `optiboard worker --gpus ...` runs it."""
    code = (
        "import sys; from cli.workers import spawn_workers; "
        f"sys.exit(spawn_workers({gpus!r}, queues='deploy-{host}', app='echo_app', "
        f"host={host!r}, loglevel='WARNING', extra_args=['--without-mingle', '--without-gossip']))"
    )
    env = {
        **os.environ,
        "DEPLOY_TEST_BROKER": broker,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
    }
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)


def _environments(app: Celery, nodes: list[str], deadline_s: float = 60) -> dict[str, Any]:
    """Each node's answer to the echo app's `worker_environment` control command."""
    answers: dict[str, Any] = {}
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and set(answers) != set(nodes):
        replies = app.control.broadcast("worker_environment", destination=nodes, reply=True, timeout=1.0)
        for reply in replies:
            answers.update(reply)
    return answers


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_spawn_workers_runs_one_pinned_worker_per_gpu_and_stops_on_sigterm(
    redis_url: str,
) -> None:
    host = f"t{uuid.uuid4().hex[:8]}"
    supervisor = _start_supervisor(redis_url, "0,1", host)
    app = Celery("probe", broker=redis_url)
    try:
        nodes = [f"gpu0@{host}", f"gpu1@{host}"]
        answers = _environments(app, nodes)
        assert set(answers) == set(nodes), f"online: {sorted(answers)}"
        assert answers[nodes[0]]["cuda_visible_devices"] == "0"
        assert answers[nodes[1]]["cuda_visible_devices"] == "1"
        assert answers[nodes[0]]["optiboard_worker_gpu"] == "0"
        assert answers[nodes[1]]["tf_force_gpu_allow_growth"] == "true"
        # Two separate processes, both children of the supervisor.
        pids = {a["pid"] for a in answers.values()}
        assert len(pids) == 2 and pids <= set(_children(supervisor.pid))

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        app.close()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


def test_spawn_workers_stops_the_set_when_one_worker_dies(redis_url: str) -> None:
    host = f"t{uuid.uuid4().hex[:8]}"
    supervisor = _start_supervisor(redis_url, "0,1", host)
    app = Celery("probe", broker=redis_url)
    try:
        nodes = [f"gpu0@{host}", f"gpu1@{host}"]
        answers = _environments(app, nodes)
        assert set(answers) == set(nodes)
        os.kill(answers[nodes[0]]["pid"], signal.SIGKILL)
        # The supervisor notices, stops GPU 1's worker too, and reports the failure so that
        # Docker's restart policy brings the whole set back.
        assert supervisor.wait(timeout=60) != 0
        pid1 = answers[nodes[1]]["pid"]
        assert not Path(f"/proc/{pid1}").exists() or _is_zombie(pid1)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        app.close()


def test_discovery_and_visibility_through_nvidia_smi(fake_nvidia_smi: Path) -> None:
    code = (
        "import json; from worker.gpus import parse_gpu_list, hardware_summary; "
        "print(json.dumps([parse_gpu_list('all'), hardware_summary()['gpus']]))"
    )
    env = {**os.environ, "PATH": f"{fake_nvidia_smi}{os.pathsep}{os.environ['PATH']}", "CUDA_VISIBLE_DEVICES": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    every, visible = json.loads(out.stdout)
    assert every == ["0", "1"]
    assert visible == [{"index": "1", "name": FAKE_GPUS["1"], "memory_mib": 16384}]


def test_the_engine_on_a_machine_without_gpu_reports_cpu_and_keeps_keras_2() -> None:
    code = (
        "import json, worker.engine.tfsetup; from worker.engine.hardware import fingerprint; "
        "info = dict(fingerprint()); "
        "import tensorflow as tf; info['keras'] = tf.keras.__name__; print(json.dumps(info))"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update({"CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"})
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["gpus"] == []
    assert info["keras"].startswith("tf_keras"), "TF_USE_LEGACY_KERAS must be set before TensorFlow loads"
