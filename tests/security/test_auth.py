"""Promise 1: nothing changes state, and nothing is read, without a valid token.

Open by design: /healthz and /readyz (probes), /login (it takes the token), /logout (it only
clears the cookie), the static dashboard pages and assets (they hold no data: every datum they
show comes from the authenticated API). Everything else in the OpenAPI document needs a token.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from typing import Any

import psutil
import pytest
from fastapi import FastAPI
from sqlalchemy import inspect, select, text

from backend.core.settings import Settings
from backend.store import models as m
from backend.store.db import make_engine
from tests.conftest import make_token
from tests.reliability import figures
from tests.security.conftest import AppUnderTest
from tests.stack import REPO, cli, free_port, stack_env, wait_for

OPEN = {("GET", "/healthz"), ("GET", "/readyz")}


def operations(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, concrete path) of the OpenAPI document, path parameters set to 1."""
    out = []
    for path, item in app.openapi()["paths"].items():
        for method in item:
            if method in {"get", "post", "put", "patch", "delete"}:
                out.append((method.upper(), re.sub(r"\{[^}]+\}", "1", path)))
    return out


def _call(api: AppUnderTest, method: str, path: str, **kwargs: Any) -> int:
    body: dict[str, Any] = {}
    if method in {"POST", "PATCH", "PUT"}:
        body = {"files": {"file": ("x.npz", b"x")}} if path == "/api/datasets" else {"json": {}}
    return api.client.request(method, path, **body, **kwargs).status_code


def test_every_route_refuses_missing_bad_and_revoked_tokens(api: AppUnderTest) -> None:
    ops = operations(api.app)
    assert len(ops) >= 30
    dead = make_token(api.db_url, "to-revoke")
    engine = make_engine(api.db_url)
    with engine.begin() as conn:
        conn.execute(m.ApiToken.__table__.update().where(m.ApiToken.name == "to-revoke").values(revoked_at=m.utcnow()))
    engine.dispose()
    probes = 0
    for method, path in ops:
        if (method, path) in OPEN:
            continue
        for headers, cookies in (
            ({}, {}),
            ({"Authorization": "Bearer ob_not-a-real-token"}, {}),
            ({"Authorization": f"Bearer {dead}"}, {}),
            ({"Authorization": "Basic dXNlcjpwYXNz"}, {}),
            ({}, {"optiboard_token": "ob_forged"}),
            ({"Authorization": f"Bearer {api.token}x"}, {}),
        ):
            api.client.cookies.clear()
            for k, v in cookies.items():
                api.client.cookies.set(k, v)
            status = _call(api, method, path, headers=headers)
            probes += 1
            assert status == 401, f"{method} {path} with {headers or cookies} -> {status}"
    api.client.cookies.clear()
    figures.add("auth probes without a valid token", probes)
    for method, path in OPEN:
        assert api.client.request(method, path).status_code in (200, 503)


def test_a_valid_token_opens_the_same_routes(api: AppUnderTest) -> None:
    """The 401s above come from authentication, not from something else failing."""
    for method, path in operations(api.app):
        status = _call(api, method, path, headers=api.auth)
        assert status != 401, f"{method} {path} refused a valid token"


def test_pages_are_open_and_hold_no_data(api: AppUnderTest) -> None:
    for path in ("/", "/runs/1", "/compare", "/launch", "/workers"):
        r = api.client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    signin = api.client.get("/login")  # the sign-in page: no data, a form for a token
    assert signin.status_code == 200 and signin.headers["content-type"].startswith("text/html")
    assert api.client.get("/login", params={"token": "ob_forged"}).status_code == 401


def test_cookie_sign_in_is_httponly_strict_and_writes_need_same_origin(api: AppUnderTest) -> None:
    r = api.client.get("/login", params={"token": api.token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "optiboard_token=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/" in cookie
    assert api.client.cookies.get("optiboard_token") == api.token
    assert api.client.get("/api/runs").status_code == 200  # reads with the cookie

    def create(name: str, headers: dict[str, str]) -> int:
        return api.client.post("/api/experiments", json={"name": name}, headers=headers).status_code

    # A form or fetch from another site carries the cookie only if SameSite fails; even then:
    assert create("evil-1", {"Origin": "http://evil.example"}) == 403
    assert create("evil-2", {"Referer": "http://evil.example/page"}) == 403
    assert create("evil-3", {"Origin": "null"}) == 403
    assert create("evil-4", {}) == 403  # no Origin, no Referer, no X-Requested-With
    assert create("evil-5", {"Origin": "http://127.0.0.1:8000.evil.example"}) == 403
    names = {e["name"] for e in api.client.get("/api/experiments").json()["data"]}
    assert not names & {"evil-1", "evil-2", "evil-3", "evil-4", "evil-5"}
    # The dashboard's own writes: same origin, or the header a cross-site form cannot send.
    assert create("ours-1", {"Origin": "http://127.0.0.1:8000"}) == 201
    assert create("ours-2", {"X-Requested-With": "optiboard"}) == 201
    # Logging out from another site is refused like any other write (issue 15 item 9).
    r = api.client.post("/logout", headers={"Origin": "http://evil.example"}, follow_redirects=False)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    # Logging out from our own page clears the cookie.
    r = api.client.post("/logout", headers={"Origin": "http://127.0.0.1:8000"}, follow_redirects=False)
    assert r.status_code == 303 and 'optiboard_token=""' in r.headers["set-cookie"]


def _cli(args: list[str], db_url: str, tmp: Any) -> subprocess.CompletedProcess[str]:
    env = stack_env(data_dir=tmp, database_url=db_url, redis_url="redis://127.0.0.1:1/0")
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "token", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the CLI is backend-agnostic
def test_tokens_from_the_cli_are_hashed_at_rest_and_revocable(api: AppUnderTest, tmp_path: Any) -> None:
    created = _cli(["create", "ci-bot"], api.db_url, tmp_path)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("ob_") and len(secret) > 30
    assert api.client.get("/api/runs", headers={"Authorization": f"Bearer {secret}"}).status_code == 200

    # The database holds a SHA-256 of the secret and a short display prefix, never the secret.
    engine = make_engine(api.db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(m.ApiToken).where(m.ApiToken.name == "ci-bot")).one()
            assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
            assert len(row.prefix) <= 10 and secret.startswith(row.prefix)
            for table in inspect(conn).get_table_names():
                for values in conn.execute(text(f'SELECT * FROM "{table}"')):
                    assert not any(secret in str(v) for v in values), f"secret found in {table}"
    finally:
        engine.dispose()
    if api.db_url.startswith("sqlite"):
        # The raw file and its WAL, read in another process: closing a descriptor of a SQLite
        # file drops every POSIX lock this process holds on it (the app's included).
        db_file = api.db_url.removeprefix("sqlite:///")
        scan = (
            "import sys, pathlib; s = sys.argv[1].encode(); "
            "sys.exit(any(s in p.read_bytes() for p in map(pathlib.Path, sys.argv[2:]) if p.exists()))"
        )
        found = subprocess.run([sys.executable, "-c", scan, secret, db_file, db_file + "-wal"])
        assert found.returncode == 0, "the secret is in the SQLite file"

    listed = _cli(["list"], api.db_url, tmp_path)
    assert listed.returncode == 0 and "ci-bot" in listed.stdout and secret not in listed.stdout
    token_id = next(line.split()[0] for line in listed.stdout.splitlines() if "ci-bot" in line)
    revoked = _cli(["revoke", token_id], api.db_url, tmp_path)
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert api.client.get("/api/runs", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert _cli(["revoke", token_id], api.db_url, tmp_path).returncode == 1


def test_auth_cannot_be_switched_off_by_a_request(api: AppUnderTest) -> None:
    """Headers a proxy might set do not bypass the token check."""
    for headers in (
        {"X-Forwarded-For": "127.0.0.1"},
        {"X-Real-IP": "127.0.0.1"},
        {"X-Forwarded-User": "admin"},
        {"Authorization": "Bearer "},
    ):
        assert api.client.get("/api/runs", headers=headers).status_code == 401


@pytest.mark.services
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_api_binds_to_localhost_by_default(db_url: str, tmp_path: Any) -> None:
    assert Settings.model_fields["host"].default == "127.0.0.1"
    env = stack_env(data_dir=tmp_path, database_url=db_url, redis_url="redis://127.0.0.1:1/0")
    # The real command with no host option at all; look at its listening socket.
    port = free_port()
    env["OPTIBOARD_PORT"] = str(port)
    proc = cli(["api"], env, log=tmp_path / "api-default.log")
    try:

        def listening() -> list[str]:
            conns = psutil.Process(proc.pid).net_connections(kind="inet")
            return [c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port == port]

        addresses = wait_for(listening, timeout=60, what="the API to listen")
        assert addresses == ["127.0.0.1"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_sign_in_page_takes_a_pasted_token_only_from_our_page(api: AppUnderTest) -> None:
    c = api.client
    c.cookies.clear()
    assert c.post("/login", json={"token": api.token}).status_code == 403  # a cross-site form cannot add the header
    ours = {"X-Requested-With": "optiboard"}
    assert c.post("/login", json={"token": "ob_forged"}, headers=ours).status_code == 401
    assert c.post("/login", json={"token": ""}, headers=ours).status_code == 422
    assert c.cookies.get("optiboard_token") is None
    r = c.post("/login", json={"token": api.token}, headers=ours)
    assert r.status_code == 204 and "HttpOnly" in r.headers["set-cookie"]
    assert c.get("/api/runs").status_code == 200


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/compare?runs=1,2", "/compare?runs=1,2"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
    ],
)
def test_the_sign_in_link_returns_only_to_a_page_of_this_site(api: AppUnderTest, target: str, location: str) -> None:
    r = api.client.get("/login", params={"token": api.token, "next": target}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == location
