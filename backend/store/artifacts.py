"""Artifact files: server-chosen names under the artifact root, a resolver that refuses
anything whose real path leaves the root (symlinks included), and the SHA-256 every stored file
is copied with and checked against before it is read (backend.store.variants.verified_file)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

SUFFIX = {"keras": ".keras"}


def relative_path(run_id: int, fmt: str, *, attempt: str = "", suffix: str | None = None) -> str:
    """Server-chosen: the run id, an attempt tag (a zombie attempt that has not yet noticed it
    lost the run can never overwrite the files of the attempt that replaced it) and the format.
    An `uploaded` variant (the user's model as it came) keeps the `suffix` of the file measured,
    `.keras` or `.tflite`."""
    if not re.fullmatch(r"keras|tflite-[a-z0-9]+|uploaded", fmt):
        raise ValueError(f"unknown variant format {fmt!r}")
    if attempt and not attempt.isalnum():
        raise ValueError("attempt tag must be alphanumeric")
    prefix = f"{attempt}-" if attempt else ""
    if fmt == "uploaded":
        if suffix not in (".keras", ".tflite"):
            raise ValueError(f"an uploaded variant is a .keras or .tflite file, not {suffix!r}")
        return f"runs/{int(run_id)}/{prefix}{fmt}{suffix}"
    return f"runs/{int(run_id)}/{prefix}{fmt}{SUFFIX.get(fmt, '.tflite')}"


def checkpoint_relative_path(run_id: int, epoch: int) -> str:
    """Where a run's checkpoint after `epoch` is kept (training.checkpoint_every_epochs): beside
    its variants, so deleting the run's directory deletes them too."""
    return f"runs/{int(run_id)}/checkpoints/epoch-{int(epoch)}.keras"


def checkpoint_manifest_path(run_id: int) -> str:
    """The JSON object {"<epoch>": "<hex SHA-256>"} of a run's kept checkpoints, written last."""
    return f"runs/{int(run_id)}/checkpoints/manifest.json"


def resolve_inside(root: Path, relative: str) -> Path | None:
    """The real file for a stored relative path, or None if it is missing or escapes the root."""
    root_real = root.resolve()
    try:
        candidate = (root_real / relative).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # ValueError: an embedded NUL
        return None
    if not candidate.is_relative_to(root_real) or not candidate.is_file():
        return None
    return candidate


def writable_inside(root: Path, relative: str) -> Path:
    """Where to write a server-chosen relative path; refuses a target whose real directory is
    outside the root (a symlink planted inside the root must not redirect a write)."""
    root_real = root.resolve()
    target = root_real / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.parent.resolve().is_relative_to(root_real) or target.is_symlink():
        raise ValueError(f"refusing to write {relative!r}: it resolves outside the artifact root")
    return target


def removable_run_dir(root: Path, run_id: int) -> Path | None:
    """The run's artifact directory if it is a real directory inside the root, else None."""
    root_real = root.resolve()
    path = root_real / "runs" / str(int(run_id))
    if path.is_symlink() or not path.is_dir() or not path.resolve().is_relative_to(root_real):
        return None
    return path


_CHUNK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (memory stays flat whatever its size)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def copy_with_sha256(source: Path, target: Path) -> str:
    """Copy `source` to `target` and return the hex SHA-256 of the bytes written (hashed while
    copying, so the digest describes exactly what was stored)."""
    digest = hashlib.sha256()
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(_CHUNK_BYTES):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()
