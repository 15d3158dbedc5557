"""Debian's docker-compose (1.29) validates and interpolates the file without an engine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .files import COMPOSE, ENV_EXAMPLE, env_example, split_port

DOCKER_COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(
    DOCKER_COMPOSE is None,
    reason="docker-compose not installed (Debian: apt-get install docker-compose)",
)
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_PASSWORD")


def _project(tmp_path: Path, overrides: dict[str, str]) -> Path:
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    values = {**env_example(), **overrides}
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return tmp_path


def _config(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert DOCKER_COMPOSE is not None
    return subprocess.run(
        [DOCKER_COMPOSE, "--project-directory", str(project), "config", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},  # no OPTIBOARD_* or passwords leaking in from the test
    )


def _filled() -> dict[str, str]:
    return {name: f"test-{name.lower()}-0123456789abcdef" for name in SECRETS}


def test_config_validates_with_secrets_filled_in(tmp_path: Path) -> None:
    result = _config(_project(tmp_path, _filled()))
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    services = resolved["services"]
    api_env = services["api"]["environment"]
    assert api_env["OPTIBOARD_DATABASE_URL"] == (
        "postgresql+psycopg://optiboard:test-postgres_password-0123456789abcdef@postgres:5432/optiboard"
    )
    assert api_env["OPTIBOARD_REDIS_URL"] == ("redis://:test-redis_password-0123456789abcdef@redis:6379/0")
    (port,) = services["api"]["ports"]
    assert split_port(port) == ("127.0.0.1", "8000", "8000")
    assert "ports" not in services["redis"]


def test_config_lists_services_of_every_profile(tmp_path: Path) -> None:
    result = _config(_project(tmp_path, _filled()), "--services")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) >= {
        "postgres",
        "redis",
        "migrate",
        "api",
        "worker",
        "worker-cpu",
        "flower",
    }


def test_env_example_as_shipped_is_refused(tmp_path: Path) -> None:
    project = tmp_path
    shutil.copy(COMPOSE, project / "docker-compose.yml")
    shutil.copy(ENV_EXAMPLE, project / ".env")
    result = _config(project)
    assert result.returncode != 0
    assert "PASSWORD" in result.stderr


@pytest.mark.parametrize("missing", SECRETS)
def test_each_missing_secret_is_refused_by_name(tmp_path: Path, missing: str) -> None:
    values = _filled()
    del values[missing]
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    result = _config(tmp_path)
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr


def test_bind_address_and_port_are_configurable(tmp_path: Path) -> None:
    result = _config(_project(tmp_path, {**_filled(), "OPTIBOARD_PORT": "9123"}))
    assert result.returncode == 0, result.stderr
    (port,) = yaml.safe_load(result.stdout)["services"]["api"]["ports"]
    assert split_port(port) == ("127.0.0.1", "9123", "8000")
