"""Promise 5, by hand: the inputs the fuzzer may not stumble on. NaN and ±inf metrics flow
through every endpoint; NUL bytes, lone surrogates and integers beyond 2^63 get a 422 (never a
500, on PostgreSQL too); long, right-to-left and emoji strings round-trip; bodies and uploads
are size-limited (413); uploaded .npz files are never unpickled."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from tests.reliability import figures
from tests.security.conftest import AppUnderTest, build_app
from tests.security.seed import seed


def _strict_json(text: str) -> Any:
    """JSON as browsers parse it: a bare NaN or Infinity token is an error."""

    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _external_run(api: AppUnderTest, name: str = "ext") -> int:
    r = api.client.post("/api/runs", json={"name": name, "external": True}, headers=api.auth)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_nan_and_infinity_are_stored_and_returned_everywhere(api: AppUnderTest) -> None:
    run_id = _external_run(api, "diverging")
    body = (
        '{"points": [{"key": "loss", "step": 0, "value": 1.5}, {"key": "loss", "step": 1, "value": NaN},'
        ' {"key": "loss", "step": 2, "value": Infinity}, {"key": "loss", "step": 3, "value": -Infinity},'
        ' {"key": "loss", "step": 4, "value": null}, {"key": "val_loss", "step": 0, "value": 1e308}]}'
    )
    r = api.client.post(
        f"/api/runs/{run_id}/metrics", content=body, headers={**api.auth, "content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    # A retried batch is idempotent per (run, key, step): first write wins, nothing doubles.
    assert (
        api.client.post(
            f"/api/runs/{run_id}/metrics", content=body, headers={**api.auth, "content-type": "application/json"}
        ).status_code
        == 200
    )
    series = _strict_json(api.client.get(f"/api/runs/{run_id}/metrics", headers=api.auth).text)["series"]
    assert series["loss"]["steps"] == [0, 1, 2, 3, 4]
    assert series["loss"]["values"] == [1.5, "NaN", "Infinity", "-Infinity", "NaN"]
    seeded = seed(api.db_url, api.settings.artifacts)
    ids = f"{run_id},{seeded['external']},{seeded['finished']}"
    for path in (
        f"/api/runs/{run_id}",
        "/api/runs",
        f"/api/compare?runs={ids}",
        f"/api/compare.json?runs={ids}",
        f"/api/runs/{run_id}/metrics?max_points=4",
    ):
        r = api.client.get(path, headers=api.auth)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}"
        _strict_json(r.text)
    for path in (f"/api/compare.csv?runs={ids}", f"/api/compare/report.html?runs={ids}", "/metrics"):
        assert api.client.get(path, headers=api.auth).status_code == 200, path
    finish = api.client.post(
        f"/api/runs/{run_id}/finish", json={"status": "failed", "error": "diverged"}, headers=api.auth
    )
    assert finish.status_code == 200 and finish.json()["status"] == "failed"


def _refused(r: Any, *loc: Any) -> None:
    assert r.status_code == 422, f"{r.status_code}: {r.text[:300]}"
    if loc:
        assert [tuple(d["loc"][: len(loc)]) for d in r.json()["detail"]][0] == loc, r.text


def test_nul_bytes_and_lone_surrogates_get_422_not_500(api: AppUnderTest) -> None:
    c, h = api.client, api.auth
    run_id = _external_run(api)
    _refused(c.post("/api/runs", json={"name": "a\x00b", "external": True}, headers=h), "body", "name")
    _refused(c.post("/api/runs", json={"name": "ok", "tags": ["x", "\x00"]}, headers=h), "body", "tags", 1)
    _refused(c.post("/api/runs", json={"name": "ok", "notes\x00": 1}, headers=h))
    _refused(c.patch(f"/api/runs/{run_id}", json={"notes": "n\x00"}, headers=h), "body", "notes")
    _refused(c.post("/api/experiments", json={"name": "\x00"}, headers=h), "body", "name")
    _refused(c.post(f"/api/runs/{run_id}/finish", json={"status": "failed", "error": "\x00"}, headers=h))
    for param in ("q", "experiment", "tag"):
        _refused(c.get("/api/runs", params={param: "x\x00y"}, headers=h), "query", param)
    _refused(c.get("/api/runs/1%00", headers=h))
    _refused(
        c.post("/api/runs", content=b'{"name": "a\\u0000", "external": true}', headers=h), "body", "name"
    )  # no Content-Type: FastAPI still reads it as JSON
    _refused(
        c.post(
            "/api/runs",
            content=b'{"name": "\\ud800", "external": true}',
            headers={**h, "content-type": "application/json"},
        ),
        "body",
        "name",
    )
    npz = io.BytesIO()
    np.savez(
        npz, x_train=np.zeros((4, 2)), y_train=np.array([0, 1, 0, 1]), x_test=np.zeros((2, 2)), y_test=np.array([0, 1])
    )
    _refused(
        c.post("/api/datasets", files={"file": ("d.npz", npz.getvalue())}, data={"name": "a\x00"}, headers=h),
        "body",
        "name",
    )
    # Nothing above was stored.
    runs = c.get("/api/runs", headers=h).json()
    assert runs["count"] == 1 and runs["data"][0]["notes"] == ""
    figures.add("hostile inputs refused with 422", 13)


def test_integers_beyond_the_columns_get_422_not_500(api: AppUnderTest) -> None:
    c, h = api.client, api.auth
    run_id = _external_run(api)
    huge = [2**31, 2**63, 2**64, 10**30, -(2**63) - 1]
    for n in huge:
        for path in (
            f"/api/runs/{n}",
            f"/api/runs/{n}/metrics",
            f"/api/variants/{n}",
            f"/api/variants/{n}/download",
            f"/api/runs/{n}/variants",
            f"/runs/{n}",
        ):
            assert c.get(path, headers=h).status_code in (404, 422), path
        for path in (
            f"/api/experiments/{n}",
            f"/api/variants/{n}/figures/confusion",
            f"/api/compare?runs={abs(n)}",
            f"/api/runs/{run_id}/metrics?after_step={n}",
        ):
            status = c.get(path, headers=h).status_code
            assert status < 500, f"{path}: {status}"  # after_step 2^31 is a valid cursor
        assert c.post(f"/api/runs/{n}/cancel", headers=h).status_code in (404, 422)
        assert c.delete(f"/api/runs/{n}", headers=h).status_code in (404, 422)
        for spec in (
            {"dataset": {"name": "upload", "upload_id": n}},
            {"kind": "optimize", "parent_run_id": n, "exports": ["int8"]},
            {"techniques": [{"name": "distillation", "teacher_run_id": n}]},
            {"training": {"epochs": n}},
        ):
            r = c.post("/api/runs", json={"name": "big", **spec}, headers=h)
            assert r.status_code == 422, f"{spec}: {r.status_code} {r.text[:200]}"
        r = c.post(f"/api/runs/{run_id}/metrics", json={"points": [{"key": "loss", "step": n, "value": 1}]}, headers=h)
        assert r.status_code == (200 if n == 2**31 else 422), f"step {n}"  # steps are 64-bit
        figures.add("hostile inputs refused with 422", 21)
    assert c.get("/api/runs", headers=h).json()["count"] == 1


def test_long_rtl_and_emoji_strings_round_trip(api: AppUnderTest) -> None:
    c, h = api.client, api.auth
    names = [
        "🧪" * 200,
        "مرحبا بالعالم \u202eevil\u202c",
        "Z̸̡̛̤͓a̶͔͝l̵̰̈́g̷̱̓o̴̟͛",
        "<script>alert(1)</script>",
        "'; DROP TABLE runs; --",
        "\u200b\ufeff\u2028",
    ]
    ids = []
    for name in names:
        r = c.post(
            "/api/runs",
            json={"name": name, "experiment": name, "external": True, "tags": [name[:64]], "notes": name * 10},
            headers=h,
        )
        assert r.status_code == 201, r.text
        assert r.json()["name"] == name
        ids.append(r.json()["id"])
        got = c.get("/api/runs", params={"q": name}, headers=h).json()
        assert name in [run["name"] for run in got["data"]]
    assert c.post("/api/runs", json={"name": "x" * 201}, headers=h).status_code == 422
    assert c.post("/api/runs", json={"name": "x", "notes": "n" * 10_001}, headers=h).status_code == 422
    report = c.get("/api/compare/report.html", params={"runs": ",".join(map(str, ids))}, headers=h)
    assert report.status_code == 200
    assert "<script>alert(1)</script>" not in report.text  # stored XSS through a run name
    figures.add("hostile strings round-tripped", len(names))


def test_bodies_and_uploads_over_the_limit_get_413(api: AppUnderTest, tmp_path: Path) -> None:
    c, h = api.client, api.auth
    big = b'{"name": "' + b"x" * api.settings.max_request_bytes + b'"}'
    r = c.post("/api/runs", content=big, headers={**h, "content-type": "application/json"})
    assert r.status_code == 413

    def chunks() -> Any:  # no Content-Length: the limit holds while streaming
        for _ in range(api.settings.max_request_bytes // 65536 + 2):
            yield b" " * 65536

    r = c.post("/api/runs", content=chunks(), headers={**h, "content-type": "application/json"})
    assert r.status_code == 413
    app, _ = build_app(api.db_url, api.settings.broker_url, tmp_path / "small", max_upload_bytes=4096)
    with TestClient(app, raise_server_exceptions=False) as small:
        r = small.post("/api/datasets", files={"file": ("d.npz", b"\0" * 200_000)}, headers=h)
        assert r.status_code == 413
        r = small.post("/api/datasets", files={"file": ("d.npz", b"\0" * 6000)}, headers=h)
        assert r.status_code == 413  # over the file limit, under the multipart allowance
    assert not list((tmp_path / "small" / "datasets").glob("*.npz"))
    figures.add("oversized requests refused with 413", 4)


class _Canary:
    """Unpickling this creates a file: proof that a pickle was (or was not) loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.touch, (Path(self.path),))


def test_npz_uploads_are_never_unpickled(api: AppUnderTest, tmp_path: Path) -> None:
    c, h = api.client, api.auth
    touched = tmp_path / "unpickled"
    hostile_object = io.BytesIO()
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = _Canary(str(touched)), 1
    np.savez(hostile_object, x_train=arr, y_train=np.array([0, 1]), x_test=arr, y_test=np.array([0, 1]))
    plain_pickle = pickle.dumps(_Canary(str(touched)))
    good = io.BytesIO()
    np.savez(
        good, x_train=np.zeros((4, 2)), y_train=np.array([0, 1, 0, 1]), x_test=np.zeros((2, 2)), y_test=np.array([0, 1])
    )
    for content in (hostile_object.getvalue(), plain_pickle, b"", good.getvalue()[:100], b"PK\x03\x04junk"):
        r = c.post("/api/datasets", files={"file": ("d.npz", content)}, headers=h)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"][:2] == ["body", "file"]  # and the array, when one is at fault
    assert not touched.exists(), "an uploaded pickle was executed"
    assert c.post("/api/datasets", files={"file": ("d.npz", good.getvalue())}, headers=h).status_code == 201
    assert c.get("/api/datasets", headers=h).json()["count"] == 1
