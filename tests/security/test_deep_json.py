"""Issue 15 item 2: a JSON body of any depth (or any other shape a parser chokes on) gets a 4xx
on every state-changing route, never a 500 or a traceback in the log; without a token it gets
401 before anything of it is parsed. Real HTTP to a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.api.middleware.json_body import MAX_JSON_DEPTH, bracket_depth
from backend.api.middleware.writes import OPEN_WRITES
from tests.reliability import figures
from tests.security.live import LiveApi, live_api, state_changing_routes


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    yield from live_api(tmp_path_factory.mktemp("deep-json"))


def _nested(depth: int, leaf: str = '"\\u0000"') -> bytes:
    return ("[" * depth + leaf + "]" * depth).encode()


def hostile_bodies() -> dict[str, bytes]:
    return {
        "notes 1000 deep, NUL leaf (the report's body)": b'{"notes": ' + _nested(1000) + b"}",
        "arrays 965 deep": _nested(965, "1"),
        "arrays 1025 deep (past orjson's limit)": _nested(1025, "1"),
        "arrays 100,000 deep": _nested(100_000, "1"),
        "objects 5000 deep": b'{"a":' * 5000 + b"1" + b"}" * 5000,
        "openers only, 200,000": b"[" * 200_000,
        "deep after an Infinity literal": b"[Infinity, " + _nested(3000, "1") + b"]",
        "deep with brackets hidden in strings": b'["]]]]", ' + _nested(2000, '"[[["') + b"]",
        f"grid value {MAX_JSON_DEPTH + 1} deep": json.dumps(
            {"base": {"name": "x"}, "grid": {"training.epochs": [_deep_list(MAX_JSON_DEPTH)]}}
        ).encode(),
        "not UTF-8": b'{"name": "\xff\xfe"}',
        "UTF-16": json.dumps({"name": "x"}).encode("utf-16"),
        "lone surrogate, deep": b'{"notes": ' + _nested(900, '"\\ud800"') + b"}",
    }


def _deep_list(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_bracket_depth_counts_nesting_not_strings() -> None:
    assert bracket_depth(b'{"a": [1, {"b": "[[[[{{"}]}') == 3
    assert bracket_depth(b'["\\\\", [[]]]') == 3  # an escaped backslash closes its string
    assert bracket_depth(b'["\\"]]]]", []]') == 2  # an escaped quote does not
    assert bracket_depth(_nested(MAX_JSON_DEPTH, "1")) == MAX_JSON_DEPTH
    assert bracket_depth(b"[" * 10_000) > MAX_JSON_DEPTH  # unbalanced: every opener counts


def test_every_state_changing_route_answers_hostile_json_with_4xx_and_no_traceback(server: LiveApi) -> None:
    routes = state_changing_routes()
    assert len(routes) >= 12
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for name, body in hostile_bodies().items():
            for method, path in routes:
                headers = {"content-type": "application/json"}
                anonymous = http.request(method, path, content=body, headers=headers)
                signed = http.request(method, path, content=body, headers={**headers, **server.auth})
                for who, r in (("anonymous", anonymous), ("token", signed)):
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    assert 400 <= r.status_code < 500, (
                        f"{name}: {who} {method} {path} -> {r.status_code} {r.text[:200]}"
                    )
                # Nothing of the body is looked at before authentication, or, on the open writes
                # (no token needed), before the same-origin check refuses an origin-less request.
                expected = 403 if path in OPEN_WRITES else 401
                assert anonymous.status_code == expected, f"{name}: {method} {path} -> {anonymous.status_code}"
                if "deep" in name and path != "/logout":
                    assert signed.status_code == 422, f"{name}: {method} {path} -> {signed.status_code}"
                    assert "nested deeper than" in signed.text or "NUL" in signed.text or "surrogate" in signed.text
                if "UTF" in name and path != "/logout":
                    assert signed.status_code == 422 and "not valid UTF-8" in signed.text
    log = server.log_text()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]
    assert 500 not in statuses
    figures.add("hostile JSON bodies refused with 4xx (deep, not UTF-8)", sum(statuses.values()))


def test_a_shallow_document_still_works_and_a_deep_one_within_the_limit_is_validated(server: LiveApi) -> None:
    with server.http() as http:
        run = http.post("/api/runs", json={"name": "deep-ok", "external": True, "notes": "n"})
        assert run.status_code == 201, run.text
        rid = run.json()["id"]
        ok = http.post(
            f"/api/runs/{rid}/metrics",
            content=b'{"points": [{"key": "loss", "step": 0, "value": Infinity}]}',
            headers={"content-type": "application/json"},
        )
        assert ok.status_code == 200 and ok.json()["accepted"] == 1, ok.text
        # The deepest document the guard lets through reaches validation: a 422 naming the field.
        deep = json.dumps({"notes": _deep_list(MAX_JSON_DEPTH - 1)})
        r = http.patch(f"/api/runs/{rid}", content=deep, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "notes"]
        sweep = {"base": {"name": "s"}, "grid": {"training.epochs": [_deep_list(MAX_JSON_DEPTH - 4)]}}
        r = http.post("/api/sweeps/preview", json=sweep)
        assert r.status_code == 422, r.text
    assert "Traceback" not in server.log_text()


def test_logout_is_open_but_reads_no_body(server: LiveApi, tmp_path: Path) -> None:
    r = httpx.post(
        f"{server.url}/logout",
        content=_nested(100_000, "1"),
        headers={"content-type": "application/json", "x-requested-with": "optiboard"},
    )
    assert r.status_code in (303, 422)
