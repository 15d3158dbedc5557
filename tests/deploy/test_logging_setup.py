"""backend.core.logging_setup: one JSON object per line, with context fields, in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_json_lines_carry_level_logger_message_extras_and_context() -> None:
    lines = _run(
        """
        import logging
        from backend.core.logging_setup import configure_logging, log_context
        configure_logging(json=True, level="info")
        configure_logging(json=True, level="info")  # twice: still one handler
        log = logging.getLogger("optiboard.test")
        log.debug("hidden")
        with log_context(run_id=42, worker="gpu0@box"):
            log.info("epoch %d done", 3, extra={"loss": float("nan"), "step": 7})
        log.warning("multi\\nline")
        try:
            raise ValueError("bad spec")
        except ValueError:
            log.exception("run failed")
        logging.getLogger("uvicorn.access").info("GET /healthz 200")
        """
    )
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert [r["msg"] for r in records] == [
        "epoch 3 done",
        "multi\nline",
        "run failed",
        "GET /healthz 200",
    ]
    first = records[0]
    assert first["level"] == "INFO" and first["logger"] == "optiboard.test"
    assert first["run_id"] == 42 and first["worker"] == "gpu0@box" and first["step"] == 7
    assert first["ts"].endswith("+00:00")
    assert "run_id" not in records[1], "context must not leak out of its block"
    assert records[2]["level"] == "ERROR" and "ValueError: bad spec" in records[2]["exc"]
    assert records[3]["logger"] == "uvicorn.access"


def test_text_mode_is_for_people_but_keeps_context() -> None:
    lines = _run(
        """
        import logging
        from backend.core.logging_setup import configure_logging, log_context
        configure_logging(json=False, level="DEBUG")
        with log_context(run_id=5):
            logging.getLogger("x").debug("hello")
        """
    )
    assert len(lines) == 1
    assert "DEBUG" in lines[0] and "x: hello" in lines[0] and "run_id=5" in lines[0]
    assert not lines[0].startswith("{")


def test_celery_hook_keeps_json_logging_when_celery_sets_up_a_worker() -> None:
    # A worker calls app.log.setup(), which installs Celery's own text handler on the root
    # logger unless a receiver is connected to setup_logging.
    code = """
        import logging
        from celery import Celery
        from backend.core.logging_setup import connect_celery_logging
        {hook}
        app = Celery("t", broker="memory://")
        app.log.setup(loglevel="INFO", redirect_stdouts=False)
        logging.getLogger("celery.worker").info("ready")
        """
    hooked = _run(code.format(hook='connect_celery_logging(json=True, level="INFO")'))
    assert [json.loads(line)["msg"] for line in hooked] == ["ready"]
    plain = _run(code.format(hook="pass"))
    assert plain and not plain[-1].startswith("{"), "without the hook Celery's format wins"
