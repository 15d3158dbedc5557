"""`make run` installs only what the service needs; the test tools come with `make test`
(issue 16 item 10: a 2.9 GB venv with Playwright, schemathesis, mypy and hadolint just to run
the service). The project's license is an SPDX expression, so setuptools does not warn."""

from __future__ import annotations

import re
import subprocess
import tomllib

from tests.stack import REPO


def _plan(target: str) -> str:
    return subprocess.run(
        ["make", "-n", "-B", target, "VENV=/nonexistent-venv"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


def _extras(plan: str) -> set[str]:
    return {e for group in re.findall(r'pip install --quiet -e "\.\[([a-z,]+)\]"', plan) for e in group.split(",")}


def test_make_run_installs_the_service_without_the_test_tools() -> None:
    run = _plan("run")
    assert _extras(run) == {"worker"}
    assert "optiboard up" in run
    assert _extras(_plan("test")) == {"worker", "test"}


def test_the_test_tools_are_not_runtime_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"] + project["optional-dependencies"]["worker"])
    for tool in ("playwright", "schemathesis", "mypy", "hadolint", "pytest", "ruff", "hypothesis"):
        assert tool not in runtime


def test_the_license_is_an_spdx_expression() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert data["project"]["license"] == "Apache-2.0"  # a table is deprecated (PEP 639)
    setuptools = next(r for r in data["build-system"]["requires"] if r.startswith("setuptools"))
    assert int(re.search(r">=(\d+)", setuptools).group(1)) >= 77  # the first to read the string form
