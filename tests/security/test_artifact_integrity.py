"""Issue 15 item 5: every stored model file carries its SHA-256; a download, and a job about to
read a parent's or teacher's model, checks it first. A damaged file gets a clear 409 (and the
variant is marked damaged), never 200 with the wrong bytes. Real HTTP to a real server; the
files are stored by the worker's own reporter."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.core.settings import Settings
from backend.store import runs, variants
from backend.store.artifacts import relative_path
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from runspec.spec import RunSpec
from tests.reliability import figures
from tests.security.live import LiveApi, live_api
from tests.security.seed import variant_fields
from worker.engine.contract import VariantResult
from worker.execution import _model_path
from worker.reporter import DbReporter

SIZES = {"keras": 642_248, "tflite-float32": 642_248}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    yield from live_api(tmp_path_factory.mktemp("integrity"))


def _store_run(server: LiveApi, tmp: Path, name: str) -> dict[str, int]:
    """A finished run whose variants were stored by the worker's DbReporter."""
    factory = make_sessionmaker(make_engine(server.db))
    with unit_of_work(factory) as s:
        run = runs.create_run(s, spec=RunSpec(name=name))
        lease = runs.claim_run(s, run_id=run.id, worker="test")
    reporter = DbReporter(factory, run_id=run.id, lease=lease, artifact_root=server.data / "artifacts")
    for fmt, size in SIZES.items():
        source = tmp / f"{name}-{fmt}.bin"
        source.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
        reporter.add_variant(
            VariantResult(
                format=fmt,
                path=source,
                accuracy=0.9,
                precision=0.9,
                recall=0.9,
                f1=0.9,
                confusion=[[1]],
                size_bytes=size,
                gzip_bytes=size,
                params=1,
                nonzero_params=1,
            )
        )
    with unit_of_work(factory) as s:
        runs.finish_run(s, run_id=run.id, lease=lease, status="succeeded")
        ids = {v.format: v.id for v in variants.list_variants(s, run_ids=[run.id])}
    return {"run": run.id, **ids}


def _file(server: LiveApi, variant_id: int) -> Path:
    factory = make_sessionmaker(make_engine(server.db))
    with unit_of_work(factory) as s:
        v = variants.get_variant(s, variant_id=variant_id)
        assert v is not None
        return server.data / "artifacts" / v.artifact_path


def test_damaged_files_are_refused_with_409_and_marked(server: LiveApi, tmp_path: Path) -> None:
    ids = _store_run(server, tmp_path, "whole")
    with server.http() as http:
        for fmt in SIZES:
            path = _file(server, ids[fmt])
            meta = http.get(f"/api/variants/{ids[fmt]}").json()
            assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and meta["damaged"] is None
            r = http.get(f"/api/variants/{ids[fmt]}/download")
            assert r.status_code == 200 and r.content == path.read_bytes()
        # The report's two cases: a .tflite cut to 542,248 of 642,248 bytes, a .keras with a byte changed.
        tflite = _file(server, ids["tflite-float32"])
        tflite.write_bytes(tflite.read_bytes()[:542_248])
        keras = _file(server, ids["keras"])
        data = bytearray(keras.read_bytes())
        data[1000] ^= 0xFF
        keras.write_bytes(bytes(data))
        for fmt in SIZES:
            for _ in range(2):  # refused again, from the mark, without reading the file
                r = http.get(f"/api/variants/{ids[fmt]}/download")
                assert r.status_code == 409, (fmt, r.status_code)
                assert "damaged" in r.json()["detail"] and "SHA-256" in r.json()["detail"]
                assert r.headers["content-type"].startswith("application/json")
            meta = http.get(f"/api/variants/{ids[fmt]}").json()
            assert meta["damaged"] and "SHA-256" in meta["damaged"]
            figures.add("damaged artifacts refused (409)")
    assert "Traceback" not in server.log_text()


def test_a_job_never_reads_a_damaged_parent_model(server: LiveApi, tmp_path: Path) -> None:
    ids = _store_run(server, tmp_path, "parent")
    factory = make_sessionmaker(make_engine(server.db))
    settings = Settings(data_dir=server.data, database_url=server.db)
    assert _model_path(factory, settings, ids["run"]) == _file(server, ids["keras"])
    path = _file(server, ids["keras"])
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"cannot be used: .*damaged.*SHA-256"):
        _model_path(factory, settings, ids["run"])
    with server.http() as http:  # the mark the worker left is what the API shows
        assert http.get(f"/api/variants/{ids['keras']}").json()["damaged"]


def test_a_variant_stored_before_digests_is_hashed_on_first_read_then_checked(server: LiveApi) -> None:
    factory = make_sessionmaker(make_engine(server.db))
    with unit_of_work(factory) as s:
        run = runs.create_run(s, spec=RunSpec(name="legacy", external=True))
        rel = relative_path(run.id, "tflite-float32", attempt="old")
        target = server.data / "artifacts" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"TFL3" + bytes(5000))
        vid = variants.add_variant(s, run_id=run.id, fields=variant_fields("tflite-float32", rel)).id
    with server.http() as http:
        assert http.get(f"/api/variants/{vid}").json()["sha256"] is None
        assert http.get(f"/api/variants/{vid}/download").status_code == 200
        assert http.get(f"/api/variants/{vid}").json()["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
        target.write_bytes(b"TFL3" + bytes(4000))
        assert http.get(f"/api/variants/{vid}/download").status_code == 409
        target.unlink()
        other = http.get(f"/api/variants/{vid}/download")
        assert other.status_code == 409  # stays damaged: a mark is cleared only by a new run


def test_a_missing_file_is_404_not_a_500(server: LiveApi, tmp_path: Path) -> None:
    ids = _store_run(server, tmp_path, "missing")
    _file(server, ids["tflite-float32"]).unlink()
    r = httpx.get(f"{server.url}/api/variants/{ids['tflite-float32']}/download", headers=server.auth)
    assert r.status_code == 404 and "missing" in r.json()["detail"]
