"""Issue 15 item 9: every state-changing route, /logout included, refuses a cross-site request
that carries the dashboard's cookie (or, for /logout, no credentials at all), over real HTTP.
The routes are enumerated from the app, so a route added later is covered too."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend.api.deps import COOKIE
from tests.reliability import figures
from tests.security.live import LiveApi, live_api, state_changing_routes

CROSS_SITE = [
    {"Origin": "http://evil.example"},
    {"Referer": "http://evil.example/page"},
    {"Origin": "null"},
    {},  # neither Origin nor Referer nor X-Requested-With
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    yield from live_api(tmp_path_factory.mktemp("cross-site"))


def _state(http: httpx.Client) -> tuple[object, ...]:
    runs = http.get("/api/runs").json()["data"]
    experiments = http.get("/api/experiments").json()["data"]
    return tuple(sorted((r["id"], r["name"], r["status"], tuple(r["tags"]), r["notes"]) for r in runs)), len(
        experiments
    )


def test_every_state_changing_route_refuses_a_cross_site_cookie_request(server: LiveApi) -> None:
    routes = state_changing_routes()
    assert ("POST", "/logout") in routes and len(routes) >= 12
    with server.http() as http:
        run = http.post("/api/runs", json={"name": "victim", "external": True}).json()
    refused = 0
    # The path parameters name a real run, so a request that got through would change it.
    with httpx.Client(base_url=server.url, timeout=30, cookies={COOKIE: server.token}) as browser:
        for method, path in routes:
            path = path.replace("/1", f"/{run['id']}")
            for headers in CROSS_SITE:
                body = {"name": "pwned", "external": True}
                r = browser.request(method, path, json=body, headers=headers)
                assert r.status_code == 403, f"{method} {path} {headers} -> {r.status_code} {r.text[:200]}"
                assert "set-cookie" not in r.headers, f"{method} {path} touched the cookie"
                refused += 1
            # The same request from our own page goes through the guard (whatever the route says).
            own = browser.request(method, path, json={}, headers={"Origin": server.url})
            assert own.status_code != 403, f"{method} {path}: a same-origin request was refused"
    figures.add("cross-site cookie writes refused with 403", refused)


def test_cross_site_requests_change_nothing(server: LiveApi) -> None:
    with server.http() as http:
        run = http.post("/api/runs", json={"name": "victim-2", "external": True, "tags": ["a"]}).json()
        before = _state(http)
    with httpx.Client(base_url=server.url, timeout=30, cookies={COOKIE: server.token}) as browser:
        for method, path in state_changing_routes():
            path = path.replace("/1", f"/{run['id']}")
            for headers in CROSS_SITE:
                browser.request(method, path, json={"name": "pwned", "tags": ["x"], "notes": "x"}, headers=headers)
    with server.http() as http:
        assert _state(http) == before


def test_logout_from_another_site_keeps_the_cookie(server: LiveApi) -> None:
    for headers in CROSS_SITE:
        r = httpx.post(f"{server.url}/logout", headers=headers, follow_redirects=False)
        assert r.status_code == 403 and "set-cookie" not in r.headers
    ours = httpx.post(f"{server.url}/logout", headers={"Origin": server.url}, follow_redirects=False)
    assert ours.status_code == 303 and f'{COOKIE}=""' in ours.headers["set-cookie"]
    bearer = httpx.post(f"{server.url}/logout", headers=server.auth, follow_redirects=False)
    assert bearer.status_code == 303  # a bearer token cannot come from another site
