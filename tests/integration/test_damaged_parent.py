"""Issue 15 item 5, the job side: an optimize run whose parent's model file was damaged on disk
fails, naming the damage, instead of quantizing the wrong bytes (a real Celery worker)."""

from __future__ import annotations

from pathlib import Path

from backend.store import runs, variants
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from runspec.spec import RunSpec
from tests.conftest import Stack
from tests.stack import tiny_spec
from worker.engine.contract import VariantResult
from worker.reporter import DbReporter


def test_an_optimize_run_refuses_a_damaged_parent_model(live_stack: Stack, tmp_path: Path) -> None:
    factory = make_sessionmaker(make_engine(live_stack.settings.db_url))
    with unit_of_work(factory) as s:
        parent = runs.create_run(s, spec=RunSpec.model_validate(tiny_spec("damaged-parent")))
        lease = runs.claim_run(s, run_id=parent.id, worker="test")
    model = tmp_path / "model.keras"
    model.write_bytes(b"PK\x03\x04" + bytes(20_000))
    DbReporter(factory, run_id=parent.id, lease=lease, artifact_root=live_stack.settings.artifacts).add_variant(
        VariantResult(
            format="keras",
            path=model,
            accuracy=0.9,
            precision=0.9,
            recall=0.9,
            f1=0.9,
            confusion=[[1]],
            size_bytes=20_004,
            gzip_bytes=100,
            params=1,
            nonzero_params=1,
        )
    )
    with unit_of_work(factory) as s:
        runs.finish_run(s, run_id=parent.id, lease=lease, status="succeeded")
        stored = variants.list_variants(s, run_ids=[parent.id])[0]
    path = live_stack.settings.artifacts / stored.artifact_path
    path.write_bytes(path.read_bytes()[:-4000])  # truncated on disk

    r = live_stack.client.http.post(f"/api/runs/{parent.id}/optimize", json={"exports": ["float32"]})
    assert r.status_code == 201, r.text
    child = live_stack.client.wait_terminal(r.json()["id"], timeout=240)
    assert child["status"] == "failed"
    assert "damaged" in child["error"] and "SHA-256" in child["error"], child["error"]
    assert live_stack.client.http.get(f"/api/variants/{stored.id}").json()["damaged"]
