"""Artifact files: server-chosen names under the artifact root, and a resolver that refuses
anything whose real path leaves the root (symlinks included)."""

from __future__ import annotations

from pathlib import Path

SUFFIX = {"keras": ".keras"}


def relative_path(run_id: int, fmt: str) -> str:
    return f"runs/{int(run_id)}/{fmt}{SUFFIX.get(fmt, '.tflite')}"


def resolve_inside(root: Path, relative: str) -> Path | None:
    """The real file for a stored relative path, or None if it is missing or escapes the root."""
    root_real = root.resolve()
    try:
        candidate = (root_real / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not candidate.is_relative_to(root_real) or not candidate.is_file():
        return None
    return candidate
