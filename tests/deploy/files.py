"""Paths and parsers shared by the deployment tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
API_DOCKERFILE = ROOT / "docker" / "api.Dockerfile"
WORKER_DOCKERFILE = ROOT / "docker" / "worker.Dockerfile"

# Names of variables that hold secrets: each must come from .env with no default.
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY)\b")
_PART = r"(?:\$\{[^}]*\}|[^:$]+)"
_PORT = re.compile(rf"(?P<ip>{_PART}):(?P<published>{_PART}):(?P<target>\d+)(?:/tcp)?")
VAR_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<rest>[^}]*)\}")


def compose_text_without_comments() -> str:
    return "\n".join(line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#"))


def split_port(mapping: str) -> tuple[str, str, str]:
    """`"HOST_IP:PUBLISHED:TARGET"` -> its three parts (HOST_IP may hold `${...:-x}`)."""
    match = _PORT.fullmatch(str(mapping))
    assert match, f"not HOST_IP:PUBLISHED:TARGET: {mapping}"
    return match["ip"], match["published"], match["target"]


def compose() -> dict[str, Any]:
    """The compose file as YAML (anchors and `<<` merges resolved, variables not)."""
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out
