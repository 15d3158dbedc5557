"""Small factories: rows the security tests need (an external run with NaN/±inf points, a
variant with a file under the artifact root), written through the real store."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from backend.store import metrics, runs, variants
from backend.store.artifacts import relative_path
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from runspec.spec import RunSpec


def variant_fields(fmt: str, artifact_path: str, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        format=fmt,
        artifact_path=artifact_path,
        accuracy=0.9,
        precision=0.9,
        recall=0.9,
        f1=0.9,
        confusion=[[5, 1], [0, 6]],
        size_bytes=1000,
        gzip_bytes=900,
        params=10,
        nonzero_params=10,
        latency_p50_ms=0.1,
        latency_p95_ms=0.2,
        throughput_per_s=100.0,
        hardware={},
        extra={},
    )
    fields.update(overrides)
    return fields


def seed(db_url: str, artifact_root: Path, *, name: str = "seeded") -> dict[str, int]:
    """An external run with a diverging loss (NaN, ±inf), a finished run with a real file."""
    engine = make_engine(db_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as s:
            ext = runs.create_run(s, spec=RunSpec(name=f"{name}-external", external=True))
            metrics.log_batch(
                s,
                run_id=ext.id,
                points=[
                    metrics.Point("loss", 0, 1.0),
                    metrics.Point("loss", 1, math.inf),
                    metrics.Point("loss", 2, math.nan),
                    metrics.Point("loss", 3, -math.inf),
                    metrics.Point("val_loss", 0, 2.0),
                ],
            )
            done = runs.create_run(s, spec=RunSpec(name=f"{name}-finished"))
            lease = runs.claim_run(s, run_id=done.id, worker="seed")
            rel = relative_path(done.id, "tflite-float32", attempt="seed")
            (artifact_root / rel).parent.mkdir(parents=True, exist_ok=True)
            (artifact_root / rel).write_bytes(b"TFL3 not really a model")
            v = variants.add_variant(s, run_id=done.id, fields=variant_fields("tflite-float32", rel))
            runs.finish_run(s, run_id=done.id, lease=lease, status="succeeded")
            queued = runs.create_run(s, spec=RunSpec(name=f"{name}-queued"))
        return {"external": ext.id, "finished": done.id, "variant": v.id, "queued": queued.id}
    finally:
        engine.dispose()
