"""Fixtures for the deployment tests. Redis comes from tests/conftest.py (`redis_url`)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from backend.store.migrate import upgrade
from tests.conftest import PG_ADMIN


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database of its own, shared by the API and every worker of a
    test (a many-hosts deployment in miniature), dropped afterwards."""
    name = f"optiboard_deploy_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


FAKE_GPUS = {"0": "Fake GPU Alpha", "1": "Fake GPU Beta"}


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path) -> Path:
    """A directory holding an `nvidia-smi` that reports two GPUs: GPUs are the one part these
    tests fake (this machine has none). Prepend it to PATH of the processes under test."""
    bindir = tmp_path / "fake-bin"
    bindir.mkdir()
    script = bindir / "nvidia-smi"
    rows = "".join(f"{i}, {name}, 16384, GPU-fake-{i}\n" for i, name in FAKE_GPUS.items())
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{rows}EOF\n")
    script.chmod(0o755)
    return bindir
