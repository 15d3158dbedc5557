"""Model files for the upload tests, written by hand (no TensorFlow): `.keras` archives with a
given config.json, hostile zips (bomb, zip-slip, symlink), HDF5 and TFLite headers."""

from __future__ import annotations

import json
import random
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Any

from tests.uploads.bombs import _deflate_repeated, _write_zip

KERAS3_METADATA = {"keras_version": "3.15.1", "date_saved": "2026-11-30@17:00:00"}


def keras_file(path: Path, config: dict[str, Any], *, metadata: dict[str, Any] | None = None) -> Path:
    """A `.keras` archive holding `config` as config.json (the weights member is a stub: the
    static scan never reads it)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps(metadata or KERAS3_METADATA))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))
    return path


def layer(class_name: str, name: str, config: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": class_name,
        "config": {"name": name, "trainable": True, **(config or {})},
        "registered_name": None,
        **extra,
    }


def sequential(*layers: dict[str, Any], name: str = "seq") -> dict[str, Any]:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": name, "trainable": True, "layers": list(layers)},
        "registered_name": None,
    }


def good_layers() -> list[dict[str, Any]]:
    dtype = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
    init = {
        "module": "keras.initializers",
        "class_name": "GlorotUniform",
        "config": {"seed": None},
        "registered_name": None,
    }
    return [
        layer("InputLayer", "input", {"batch_shape": [None, 8], "dtype": "float32"}),
        layer("Dense", "dense", {"units": 4, "activation": "relu", "dtype": dtype, "kernel_initializer": init}),
        layer("Dense", "out", {"units": 3, "activation": "linear", "dtype": dtype}),
    ]


def zip_bomb_keras(path: Path, *, expanded_bytes: int) -> Path:
    """A `.keras` whose model.weights.h5 is a true deflate stream of `expanded_bytes` zeros
    (a few MB on the wire)."""
    weights, crc = _deflate_repeated(b"\x89HDF\r\n\x1a\n", expanded_bytes, bytes(1 << 24))
    members = []
    for name, raw in (
        ("metadata.json", json.dumps(KERAS3_METADATA).encode()),
        ("config.json", json.dumps(sequential(*good_layers())).encode()),
    ):
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        members.append((name, c.compress(raw) + c.flush(), zlib.crc32(raw), len(raw), 8))
    members.append(("model.weights.h5", weights, crc, expanded_bytes + 8, 8))
    _write_zip(path, members)
    return path


def zip_slip_keras(path: Path) -> Path:
    keras_file(path, sequential(*good_layers()))
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("../../../../tmp/optiboard-zip-slip.py", b"print('escaped')")
    return path


def symlink_keras(path: Path) -> Path:
    keras_file(path, sequential(*good_layers()))
    info = zipfile.ZipInfo("assets/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(info, "/etc/passwd")
    return path


def hdf5_file(path: Path) -> Path:
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(512))
    return path


def tflite_like(path: Path, identifier: bytes = b"TFL3") -> Path:
    path.write_bytes(b"\x1c\x00\x00\x00" + identifier + bytes(64))
    return path


def _deflated(name: str, raw: bytes, *, crc: int | None = None) -> tuple[str, bytes, int, int, int]:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (name, c.compress(raw) + c.flush(), zlib.crc32(raw) if crc is None else crc, len(raw), 8)


def json_explosion(size: int) -> bytes:
    """`size` bytes of JSON that parse into ~size/3 empty lists (`[[],[],[5],...]`), varied
    enough that deflate packs it only ~70-fold (far under any ratio bound)."""
    rng = random.Random(1)
    parts, n = ["["], 1
    while n < size - 4:
        s = "[]," if rng.random() > 0.02 else f"[{rng.randint(0, 9)}],"
        parts.append(s)
        n += len(s)
    parts.append("[]]")
    return "".join(parts).encode()


def exploding_keras(path: Path, *, config_bytes: int, metadata_too: bool = False) -> Path:
    """A `.keras` whose config.json (and metadata.json with `metadata_too`) is `config_bytes`
    of `json_explosion`: small on the wire, hundreds of MB once parsed."""
    raw = json_explosion(config_bytes)
    meta = raw if metadata_too else json.dumps(KERAS3_METADATA).encode()
    members = [
        _deflated("metadata.json", meta),
        _deflated("config.json", raw),
        _deflated("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64)),
    ]
    _write_zip(path, members)
    return path


def corrupt_member_keras(path: Path, how: str) -> Path:
    """A `.keras` whose config.json cannot be read back: `how` is "crc" (the CRC-32 in the
    directory is wrong) or "deflate" (the compressed bytes are garbage)."""
    raw = json.dumps(sequential(*good_layers())).encode()
    name, data, crc, size, method = _deflated("config.json", raw, crc=12345 if how == "crc" else None)
    if how == "deflate":
        data = b"\xff" * len(data)
    members = [
        _deflated("metadata.json", json.dumps(KERAS3_METADATA).encode()),
        (name, data, crc, size, method),
        _deflated("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64)),
    ]
    _write_zip(path, members)
    return path
