"""Receiving an uploaded file: streamed to a server-named `.part` file, bounded while it
streams, hashed on the way. Shared by the dataset (.npz) and model uploads."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from fastapi import HTTPException, status

CHUNK_BYTES = 1 << 20


def receive(source: BinaryIO, target: Path, *, max_bytes: int) -> tuple[int, str]:
    """Copy `source` to `target` in 1 MiB chunks; returns (size in bytes, SHA-256 hex).

    Raises HTTPException 413 ("file: larger than the N byte limit") as soon as more than
    `max_bytes` arrived: memory stays at one chunk and the disk at the limit, whatever the
    client claims. The caller removes `target` on any error (it may hold a partial file)."""
    size = 0
    digest = hashlib.sha256()
    with target.open("wb") as out:
        while chunk := source.read(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"file: larger than the {max_bytes} byte limit")
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()
