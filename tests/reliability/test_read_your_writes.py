"""A write's reply means it is committed: a client that reads right after a 2xx sees its write.

FastAPI runs the code after a dependency's `yield` once the response has been sent unless the
dependency is declared with scope="function"; the unit of work committed there, so 39 of 200
finish-then-read pairs on a real server read the run still `running` (found through the client's
finish-then-get_run). Real HTTP to a real server process: the race needs two sockets' timing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.live import LiveApi, live_api

PAIRS = 120


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    yield from live_api(tmp_path_factory.mktemp("ryw"))


def test_every_write_is_visible_to_the_next_read(server: LiveApi, tmp_path: Path) -> None:
    stale: list[str] = []
    with server.http() as http:
        for i in range(PAIRS):
            run = http.post("/api/runs", json={"name": f"ryw-{i}", "external": True})
            assert run.status_code == 201, run.text
            rid = run.json()["id"]
            # the hot read (GET /api/runs/{id}) and the list read the same committed row
            if http.get(f"/api/runs/{rid}").status_code != 200:
                stale.append(f"create {rid}")
            http.patch(f"/api/runs/{rid}", json={"notes": f"n{i}"})
            if http.get(f"/api/runs/{rid}").json()["notes"] != f"n{i}":
                stale.append(f"patch {rid}")
            http.post(f"/api/runs/{rid}/finish", json={"status": "succeeded"})
            if http.get(f"/api/runs/{rid}").json()["status"] != "succeeded":
                stale.append(f"finish {rid}")
    assert stale == [], f"{len(stale)} of {3 * PAIRS} reads missed the write before them: {stale[:5]}"
