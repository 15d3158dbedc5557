"""Issue 15 item 8: user text in a search is literal. `q=%`, `q=_` and the escape character
match only runs whose name, summary or notes contain them, on SQLite and PostgreSQL (the store)
and over real HTTP (the API); tag filters too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from backend.store import runs
from runspec.spec import RunSpec
from tests.security.live import LiveApi, live_api

NAMES = ["plain", "with % percent", "x_y", "xzy", "with / slash", "100%_done", "abc", "back\\slash", "br[ack]et"]
# What each query must find (case-insensitive substring, taken literally). Every run's summary
# holds "seed_cnn", so a bare "_" matches them all; "x_y" must not match "xzy".
EXPECTED = {
    "%": {"with % percent", "100%_done"},
    "x_y": {"x_y"},
    "%_": {"100%_done"},
    "a%c": set(),
    "a_c": set(),
    "/": {"with / slash"},
    "//": set(),
    "PLAIN": {"plain"},
    # PostgreSQL's default LIKE escape is a backslash and SQL Server's patterns have [...] sets:
    # with ESCAPE '/' neither means anything
    "\\": {"back\\slash"},
    "\\%": set(),
    "[": {"br[ack]et"},
    "[a-z]": set(),
    "[ack]": {"br[ack]et"},
}


def _names(records: list) -> set[str]:  # type: ignore[type-arg]
    return {r.name for r in records}


def test_store_search_is_literal_on_both_backends(session: Session) -> None:
    for name in NAMES:
        runs.create_run(session, spec=RunSpec(name=name, external=True))
    runs.create_run(session, spec=RunSpec(name="tagged", external=True, tags=["a_b"]))
    runs.create_run(session, spec=RunSpec(name="tagged-2", external=True, tags=["axb"]))
    session.flush()
    for q, expected in EXPECTED.items():
        found, count = runs.list_runs(session, filters=runs.RunFilter(q=q), limit=100)
        assert _names(found) == expected, q
        assert count == len(expected)
    found, _ = runs.list_runs(session, filters=runs.RunFilter(tag="a_b"), limit=100)
    assert _names(found) == {"tagged"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    yield from live_api(tmp_path_factory.mktemp("search"))


def test_search_over_http_is_literal(server: LiveApi) -> None:
    with server.http() as http:
        for name in NAMES:
            assert http.post("/api/runs", json={"name": name, "external": True}).status_code == 201
        for q, expected in EXPECTED.items():
            r = http.get("/api/runs", params={"q": q, "limit": 100})
            assert r.status_code == 200
            assert {d["name"] for d in r.json()["data"]} == expected, q
