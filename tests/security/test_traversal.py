"""Promise 2: artifacts live under the artifact root with server-chosen names; no path a client
sends, and no symlink planted inside the roots, reads or changes a file outside them.

The probes go over real sockets to the real server (uvicorn), raw, so no client library
normalises `../` away before the server sees it.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from backend.core.settings import FRONTEND_DIR
from backend.store import runs, variants
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from backend.store.migrate import upgrade
from runspec.spec import RunSpec
from tests.conftest import make_token
from tests.reliability import figures
from tests.reliability.redis_server import RedisServer
from tests.security.seed import seed, variant_fields
from tests.stack import Api, stack_env

pytestmark = [pytest.mark.services]  # tier: see tests/conftest.py

PROBES = [
    "../../../../../../../../etc/passwd",
    "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "..\\..\\..\\..\\etc\\passwd",
    "..%5c..%5c..%5c..%5cetc%5cpasswd",
    "....//....//....//etc/passwd",
    "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "1/../../../../etc/passwd",
    "1%00",
    "%00../../etc/passwd",
    "{canary_abs}",
    "{canary_abs_encoded}",
    "{canary_rel}",
    "planted-link",
    "~root/.bashrc",
]


@dataclass
class Target:
    api: Api
    token: str
    data: Path
    canary: Path
    marker: str
    ids: dict[str, int]


def _fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    base = tmp_path_factory.mktemp("traversal")
    outside = base / "outside"
    outside.mkdir()
    marker = "CANARY-" + hashlib.sha256(str(base).encode()).hexdigest()[:16]
    canary = outside / "canary.txt"
    canary.write_text(marker)
    data = base / "data"
    artifacts = data / "artifacts"
    artifacts.mkdir(parents=True)
    # A copy of the dashboard with a symlink planted in it, served as /static.
    frontend = base / "frontend"
    shutil.copytree(FRONTEND_DIR, frontend)
    (frontend / "planted-link").symlink_to(canary)
    (artifacts / "planted-link").symlink_to(canary)
    db = f"sqlite:///{data / 'optiboard.db'}"
    upgrade(db)
    ids = seed(db, artifacts)
    engine = make_engine(db)
    with unit_of_work(make_sessionmaker(engine)) as s:
        # Rows as a compromised or buggy writer could leave them: the download must still refuse.
        for name, path in (
            ("symlink", "planted-link"),
            ("dotdot", "../../outside/canary.txt"),
            ("absolute", str(canary)),
            ("nul", "runs/1/\x00x"),
        ):
            run = runs.create_run(s, spec=RunSpec(name=f"evil-{name}", external=True))
            ids[f"variant_{name}"] = variants.add_variant(s, run_id=run.id, fields=variant_fields("keras", path)).id
        # A run whose artifact directory is a symlink to the outside directory.
        doomed = runs.create_run(s, spec=RunSpec(name="doomed", external=True))
        runs.finish_run(s, run_id=doomed.id, lease=None, status="failed")
        ids["doomed"] = doomed.id
    engine.dispose()
    (artifacts / "runs").mkdir(exist_ok=True)
    (artifacts / "runs" / str(ids["doomed"])).symlink_to(outside, target_is_directory=True)
    redis = RedisServer(base)
    env = stack_env(data_dir=data, database_url=db, redis_url=redis.url, OPTIBOARD_FRONTEND_DIR=str(frontend))
    api = Api(env, log=base / "api.log")
    before = _fingerprint(canary)
    yield Target(api, make_token(db), data, canary, marker, ids)
    api.stop()
    redis.stop()
    assert _fingerprint(canary) == before, "the canary outside the roots was changed"
    assert sorted(p.name for p in outside.iterdir()) == ["canary.txt"], "a file was written outside"


def raw_request(port: int, method: str, target: str, token: str) -> tuple[int, bytes]:
    """One HTTP/1.1 request with the target sent byte for byte."""
    request = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request.encode("latin-1"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0
    return status, raw


def _templates(t: Target) -> list[tuple[str, str]]:
    spec = httpx.get(f"{t.api.url}/openapi.json", timeout=30).json()
    out = [(method.upper(), path) for path, item in spec["paths"].items() if "{" in path for method in item]
    out += [
        ("GET", "/runs/{run_id}"),
        ("GET", "/static/{path}"),
        ("GET", "/static/vendor/{path}"),
        ("GET", "/static/js/{path}"),
    ]
    return out


def test_path_probes_on_every_route_with_a_path_parameter_get_4xx(target: Target) -> None:
    canary_rel = "../../outside/canary.txt"
    values = {
        "{canary_abs}": str(target.canary),
        "{canary_abs_encoded}": str(target.canary).replace("/", "%2F"),
        "{canary_rel}": canary_rel,
    }
    templates = _templates(target)
    assert len(templates) >= 15
    tried = 0
    for method, template in templates:
        for probe in PROBES:
            value = values.get(probe, probe)
            path = re.sub(r"\{[^}]+\}", lambda _, v=value: v, template, count=1)
            path = re.sub(r"\{[^}]+\}", "1", path)
            status, raw = raw_request(target.api.port, method, path, target.token)
            tried += 1
            assert 400 <= status < 500, f"{method} {path} -> {status}"
            assert target.marker.encode() not in raw and b"root:x:0:0" not in raw, f"{method} {path} leaked"
    figures.add("traversal probes", tried)


def test_downloads_resolve_the_real_path_and_refuse_anything_outside(target: Target) -> None:
    headers = {"Authorization": f"Bearer {target.token}"}
    good = httpx.get(f"{target.api.url}/api/variants/{target.ids['variant']}/download", headers=headers)
    assert good.status_code == 200 and good.content == b"TFL3 not really a model"
    assert "attachment" in good.headers["content-disposition"]
    for name in ("symlink", "dotdot", "absolute", "nul"):
        r = httpx.get(f"{target.api.url}/api/variants/{target.ids[f'variant_{name}']}/download", headers=headers)
        assert r.status_code == 404, f"{name}: {r.status_code}"
        assert target.marker not in r.text
        figures.add("traversal probes")
    assert httpx.get(f"{target.api.url}/static/planted-link").status_code == 404


def test_deleting_a_run_never_follows_a_planted_symlink(target: Target) -> None:
    r = httpx.delete(
        f"{target.api.url}/api/runs/{target.ids['doomed']}", headers={"Authorization": f"Bearer {target.token}"}
    )
    assert r.status_code == 204
    assert target.canary.read_text() == target.marker


def test_uploads_get_server_chosen_names(target: Target) -> None:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(
        buf,
        x_train=rng.random((20, 4)),
        y_train=np.arange(20) % 2,
        x_test=rng.random((10, 4)),
        y_test=np.arange(10) % 2,
    )
    for filename in ("../../outside/canary.txt", "/etc/cron.d/evil.npz", "..\\..\\evil.npz"):
        r = httpx.post(
            f"{target.api.url}/api/datasets",
            headers={"Authorization": f"Bearer {target.token}"},
            files={"file": (filename, buf.getvalue())},
            data={"name": "probe"},
        )
        assert r.status_code == 201, r.text
    stored = sorted(p.name for p in (target.data / "datasets").iterdir())
    assert len(stored) == 3 and all(re.fullmatch(r"[0-9a-f]{32}\.npz", n) for n in stored)
