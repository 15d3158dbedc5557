"""Issue 15 items 1 and 2 for model uploads (archives from tests/models/files.py), over real
HTTP to a real API process (tests/security/live.py): a `.keras` whose JSON members are small
on the wire but huge once parsed is refused without the API's memory growing, and a member
that cannot be read back (a bad CRC-32, a corrupt deflate stream) is a 422 naming it, never a
500."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.models import files
from tests.reliability import figures
from tests.security.live import LiveApi, live_api
from tests.uploads.test_upload_bounds import MB, RSS_BOUND_BYTES, PeakRss


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    yield from live_api(tmp_path_factory.mktemp("models-hostile"))


def _upload(server: LiveApi, path: Path) -> httpx.Response:
    with server.http() as http:
        http.timeout = 180
        return http.post("/api/models", files={"file": (path.name, path.read_bytes())})


@pytest.mark.parametrize("metadata_too", [False, True], ids=["config.json", "config.json+metadata.json"])
def test_json_members_that_explode_when_parsed_keep_the_api_bounded(
    server: LiveApi, tmp_path: Path, metadata_too: bool
) -> None:
    bomb = files.exploding_keras(tmp_path / "x.keras", config_bytes=15 << 20, metadata_too=metadata_too)
    assert bomb.stat().st_size < 500_000  # 15 MiB of JSON per member, packed ~70-fold
    with PeakRss(server.api.proc.pid) as rss:
        started = time.monotonic()
        r = _upload(server, bomb)
        seconds = time.monotonic() - started
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"][:3] == ["body", "file", "metadata.json" if metadata_too else "config.json"]
    assert "JSON values; at most" in detail["msg"]
    # before: +402 MB (config.json) and +766 MB (both), 13 s and 29 s
    assert rss.delta < RSS_BOUND_BYTES, f"API RSS grew {rss.delta / MB:.0f} MB parsing a model's JSON"
    figures.add(
        f"model JSON explosion ({len(bomb.read_bytes()):,} B sent): API peak RSS delta MB", round(rss.delta / MB)
    )
    figures.add("model JSON explosion: ms to refuse", round(seconds * 1000))
    assert list((server.data / "artifacts" / "models").glob("*")) == []


@pytest.mark.parametrize("how", ["crc", "deflate"])
def test_a_member_that_cannot_be_read_back_is_a_422_not_a_500(server: LiveApi, tmp_path: Path, how: str) -> None:
    r = _upload(server, files.corrupt_member_keras(tmp_path / f"{how}.keras", how))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["body", "file", "config.json"] and "cannot be read from the archive" in detail["msg"]
    assert "Traceback" not in server.log_text()
