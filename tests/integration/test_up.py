"""`optiboard up`: one command starts embedded Redis, the API and a worker; Ctrl-C stops all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.stack import REPO, free_port, wait_for

pytestmark = [pytest.mark.services, pytest.mark.tensorflow]  # tier: see tests/conftest.py


def test_up_serves_dashboard_and_finishes_a_run(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIBOARD_")}
    env["PYTHONUNBUFFERED"] = "1"
    log = tmp_path / "up.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", "--data-dir", str(tmp_path / "data"), "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        link = wait_for(
            lambda: re.search(r"http://127\.0\.0\.1:\d+/login\?token=(\S+)", log.read_text()),
            timeout=90,
            what="the sign-in link",
        )
        token = link.group(1)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, timeout=60, what="API")
        with httpx.Client(base_url=base, follow_redirects=False) as browser:
            signin = browser.get(f"/login?token={token}")
            assert signin.status_code == 303 and "httponly" in signin.headers["set-cookie"].lower()
            page = browser.get("/")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        run = api.post(
            "/api/runs",
            json={
                "name": "up",
                "dataset": {"name": "digits"},
                "training": {"epochs": 1},
                "measurement": {"protocol": "quick", "latency_runs": 10, "warmup_runs": 1},
            },
        ).json()
        done = wait_for(
            lambda: (
                (r := api.get(f"/api/runs/{run['id']}").json())["status"] in ("succeeded", "failed", "cancelled") and r
            ),
            timeout=240,
            what="the run",
        )
        assert done["status"] == "succeeded", done["error"]
        assert (tmp_path / "data" / "redis.sock").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=90)
    assert code == 0, log.read_text()[-3000:]
    assert "optiboard stopped." in log.read_text()
    assert not (tmp_path / "data" / "redis.sock").exists()
