"""Hostile .npz files made in a second: a zip whose x_train.npy is a true deflate stream of
gigabytes of zeros (a decompression bomb), written without compressing the zeros each time.

After a full flush deflate forgets its history, so the compressed form of one 16 MiB block of
zeros is the same bytes every time: the bomb repeats them. The CRC-32 is computed over the
real expanded bytes, so the archive is valid and any reader (numpy.load included) really
expands it; it is combined from the block's CRC (zlib's crc32_combine, by repeated squaring)
instead of being run over gigabytes (3 GB took seconds of the fast tier).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

BLOCK = 1 << 24
_ZEROS = bytes(BLOCK)


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    npy_format.write_array(out, np.asarray(array), allow_pickle=False)
    return out.getvalue()


def _deflate_repeated(header: bytes, size: int, block: bytes) -> tuple[bytes, int]:
    """Raw deflate of header + `size` bytes of `block` repeated, and its CRC-32."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [c.compress(header), c.flush(zlib.Z_FULL_FLUSH)]
    packed = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    full, rest = divmod(size, len(block))
    parts.append(packed * full)
    crc = crc32_combine(zlib.crc32(header), crc32_repeated(block, full), full * len(block))
    parts.append(c.compress(block[:rest]) + c.flush())
    return b"".join(parts), zlib.crc32(block[:rest], crc)


def _gf2_times(matrix: list[int], vector: int) -> int:
    out, i = 0, 0
    while vector:
        if vector & 1:
            out ^= matrix[i]
        vector >>= 1
        i += 1
    return out


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, row) for row in matrix]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A + B from crc1 = crc32(A), crc2 = crc32(B) and len2 = len(B) in bytes
    (zlib's crc32_combine: shift crc1 over len2 zero bytes with a GF(2) matrix squared per bit)."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    while True:
        even = _gf2_square(odd)  # the first pass: one zero byte
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def crc32_repeated(block: bytes, times: int) -> int:
    """CRC-32 of `block` repeated `times` times, in O(log times) combines."""
    out, out_len = 0, 0  # crc32(b"") == 0
    power, power_len = zlib.crc32(block), len(block)  # the CRC of block * 2**k
    while times:
        if times & 1:
            out, out_len = crc32_combine(out, power, power_len), out_len + power_len
        times >>= 1
        if times:
            power, power_len = crc32_combine(power, power, power_len), 2 * power_len
    return out


def _write_zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> None:
    """members: (name, raw deflate data, crc, expanded size, method)"""
    out = bytearray()
    central = bytearray()
    for name, data, crc, size, method in members:
        offset = len(out)
        n = name.encode()
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(n), 0)
        out += n + data
        central += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                method,
                0,
                0x21,
                crc,
                len(data),
                size,
                len(n),
                0,
                0,
                0,
                0,
                0o644 << 16,
                offset,
            )
            + n
        )
    cd_offset = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), cd_offset, 0)
    path.write_bytes(bytes(out))


def npz_bomb(path: Path, *, expanded_bytes: int, classes: int = 10, sparse_floats: bool = False) -> Path:
    """An .npz whose x_train.npy expands to about `expanded_bytes` (< 4 GiB), with small valid
    y_train, x_test, y_test: every header is honest, so only the size betrays it.

    x_train is uint8 zeros (a bomb: ~1030-fold), or with `sparse_floats` float32 zeros with one
    value in [0, 1) every 1024 (a large, valid dataset that deflates ~200-fold and whose values
    a validator must read to check they are finite)."""
    dtype = np.dtype("<f4") if sparse_floats else np.dtype("|u1")
    n = expanded_bytes // (1024 * dtype.itemsize)
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": dtype.str, "fortran_order": False, "shape": (n, 32, 32)})
    block = _ZEROS
    if sparse_floats:
        values = np.zeros(BLOCK // 4, np.float32)
        values[::1024] = np.random.default_rng(0).random(len(values[::1024]), dtype=np.float32)
        block = values.tobytes()
    x_data, x_crc = _deflate_repeated(header.getvalue(), n * 1024 * dtype.itemsize, block)
    members = [("x_train.npy", x_data, x_crc, len(header.getvalue()) + n * 1024 * dtype.itemsize, 8)]
    for key, array in (
        ("y_train", (np.arange(n) % classes).astype(np.int16)),
        ("x_test", np.zeros((classes, 32, 32), dtype)),
        ("y_test", np.arange(classes)),
    ):
        raw = _npy(array)
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = c.compress(raw) + c.flush()
        members.append((f"{key}.npy", data, zlib.crc32(raw), len(raw), 8))
    _write_zip(path, members)
    return path
