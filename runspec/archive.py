"""Bounded zip archives: what an uploaded archive may hold, decided from its central directory
before a single byte is decompressed.

Every archive optiboard opens (dataset `.npz` uploads today, `.keras` model files later) goes
through `inspect_zip` first. It reads only the zip's central directory (the list of members
with their declared compressed and expanded sizes) and refuses, with `ArchiveRefused` (a
`ValueError` whose text says which limit and which member):

- more members than `max_members`;
- a member name that is absolute, has a drive letter, a `..` segment, a backslash or a NUL
  (path traversal if anything ever extracted it), or that appears twice;
- symbolic links (Unix mode bits in the member's external attributes), encrypted members and
  compression methods other than stored and deflate (bzip2 and LZMA have their own memory
  needs and numpy never writes them);
- a total expanded size above `max_expanded_bytes` (the sum of the declared sizes);
- a member over 1 MiB whose expanded/compressed ratio exceeds `max_ratio` (deflate tops out at
  about 1032:1, so near that ratio a member is one repeated byte: a bomb, not data).

The declared sizes are trustworthy as upper bounds: Python's `zipfile` stops a member's output
at its declared `file_size` and checks its CRC-32, so a member whose deflate stream expands
further fails with `BadZipFile` instead of growing past what was checked here. Readers must
therefore open members through `zipfile` (as `numpy.load` does), never with another unzip.

Standard library only (the API, the worker and the CLI all use it).
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

RATIO_EXEMPT_BYTES = 1 << 20  # small members compress however they like
ALLOWED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


class ArchiveRefused(ValueError):
    """The archive breaks a bound; the message names the bound and the member."""


@dataclass(frozen=True)
class Member:
    """One member as its central directory declares it (sizes in bytes)."""

    name: str
    compressed_bytes: int
    expanded_bytes: int


@dataclass(frozen=True)
class Limits:
    """Bounds for one kind of archive.

    max_expanded_bytes: sum of the members' declared expanded sizes.
    max_members: member count.
    max_ratio: expanded/compressed bytes of any member larger than 1 MiB (None: no bound).
    """

    max_expanded_bytes: int
    max_members: int = 64
    max_ratio: float | None = 1000.0
    setting: str = ""  # the setting that raises max_expanded_bytes, named in the refusal


def _name_problem(name: str) -> str | None:
    if "\x00" in name:
        return "contains a NUL character"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "has a '..' segment"
    return None


def inspect_zip(source: str | Path | IO[bytes], limits: Limits) -> list[Member]:
    """The archive's members, after checking every bound in `limits` against the central
    directory only (nothing is decompressed).

    Raises ArchiveRefused (a ValueError) naming the broken bound; ValueError when the bytes
    are not a zip archive at all.
    """
    try:
        with zipfile.ZipFile(source) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"not a readable zip archive: {exc}") from exc
    if len(infos) > limits.max_members:
        raise ArchiveRefused(f"{len(infos)} members; at most {limits.max_members} are allowed")
    seen: set[str] = set()
    members: list[Member] = []
    total = 0
    for info in infos:
        name = info.filename
        why = _name_problem(name)
        if why:
            raise ArchiveRefused(f"member {name!r} {why}")
        if name in seen:
            raise ArchiveRefused(f"member {name!r} appears twice")
        seen.add(name)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveRefused(f"member {name!r} is a symbolic link")
        if info.flag_bits & 0x1:
            raise ArchiveRefused(f"member {name!r} is encrypted")
        if info.compress_type not in ALLOWED_METHODS:
            raise ArchiveRefused(
                f"member {name!r} uses compression method {info.compress_type}; only stored and deflate are accepted"
            )
        total += info.file_size
        if total > limits.max_expanded_bytes:
            raise ArchiveRefused(
                f"expands to more than {limits.max_expanded_bytes:,} bytes (at least {total:,} "
                f"declared up to member {name!r})"
                + (f"; the limit is the setting {limits.setting}" if limits.setting else "")
            )
        if (
            limits.max_ratio is not None
            and info.file_size > RATIO_EXEMPT_BYTES
            and info.file_size > limits.max_ratio * max(info.compress_size, 1)
        ):
            ratio = info.file_size / max(info.compress_size, 1)
            raise ArchiveRefused(
                f"member {name!r} expands {ratio:,.0f}-fold ({info.compress_size:,} -> "
                f"{info.file_size:,} bytes); at most {limits.max_ratio:,.0f}-fold is accepted "
                "(a decompression bomb, not data)"
            )
        members.append(Member(name, info.compress_size, info.file_size))
    return members
