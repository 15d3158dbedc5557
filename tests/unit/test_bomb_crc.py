"""The bombs' CRC-32 is combined, not computed over gigabytes: it must equal zlib's own, or the
hostile archives stop being valid zips and the upload tests test a broken file."""

from __future__ import annotations

import random
import zlib

from tests.uploads.bombs import _deflate_repeated, crc32_combine, crc32_repeated


def test_combined_crc_equals_zlib_over_the_bytes() -> None:
    rng = random.Random(0)
    for _ in range(20):
        a, b = rng.randbytes(rng.randrange(60)), rng.randbytes(rng.randrange(60))
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    for times in (0, 1, 2, 3, 5, 8, 13, 21):
        block = rng.randbytes(rng.randrange(1, 20))
        assert crc32_repeated(block, times) == zlib.crc32(block * times)


def test_a_repeated_deflate_stream_expands_to_its_bytes_with_their_crc() -> None:
    for size in (0, 7, 999, 1000, 1001, 12_345):
        data, crc = _deflate_repeated(b"\x93NUMPY", size, bytes(1000))
        raw = zlib.decompress(data, -15)
        assert raw == b"\x93NUMPY" + bytes(size) and crc == zlib.crc32(raw)
