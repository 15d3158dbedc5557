"""The latency-protocol fields of a variant (migration 0009) on SQLite and PostgreSQL: what the
worker's VariantResult carries reaches the table through the reporter's field mapping, comes
back in the record and in the API schema unchanged (ints stay ints, the flag a bool), and a
variant stored without them reads as None."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from sqlalchemy.orm import Session

from backend.api.schemas import VariantPublic
from backend.store import variants
from runspec.vocabulary import VARIANT_PROTOCOL_FIELDS
from tests.factories import make_run, make_variant
from worker.engine.contract import VariantResult

PROTOCOL = {
    "latency_p90_ms": 0.071,
    "latency_p99_ms": 0.093,
    "latency_mean_ms": 0.0685,
    "latency_std_ms": 0.0042,
    "latency_min_ms": 0.061,
    "latency_count": 12345,
    "latency_cv": 0.0613,
    "latency_unstable": True,
    "latency_threads": 1,
    "init_ms": 1.75,
    "first_inference_ms": 0.4,
    "load_avg_1m": 1.23,
    "peak_memory_bytes": 5 * 2**30,  # beyond 32 bits: BIGINT on PostgreSQL
    "mcu_ram_bytes": 13_312,
    "mcu_flash_bytes": 104_448,
}
EXTRA = {
    "latency_all_cores": {"threads": 2, "p50_ms": 0.05, "p90_ms": 0.06},
    "delegate": {"name": "XNNPACK", "delegated_ops": 7, "total_ops": 8},
    "op_profile": [{"op": "CONV_2D", "count": 2, "macs": 1000, "time_share": None, "dtype": "int8"}],
    "float_ops": ["SOFTMAX"],
    "protocol": {"warmup_runs": 20, "runs": 12345, "min_duration_s": 1.0, "threads": 1, "timer": "perf_counter_ns"},
}


def test_every_contract_field_is_a_column() -> None:
    result_fields = set(asdict(VariantResult("tflite-int8", Path("x"), 1, 1, 1, 1, [], 1, 1, 1, 1)))
    assert set(VARIANT_PROTOCOL_FIELDS) <= result_fields
    assert set(VARIANT_PROTOCOL_FIELDS) <= set(VariantPublic.model_fields)


def test_protocol_fields_round_trip(session: Session) -> None:
    run = make_run(session)
    result = VariantResult(
        "tflite-int8",
        Path("w/model.tflite"),
        0.9,
        0.9,
        0.9,
        0.9,
        [[1]],
        104_448,
        90_000,
        10,
        10,
        **PROTOCOL,
        extra=EXTRA,
    )
    fields = {k: v for k, v in asdict(result).items() if k != "path"}  # what DbReporter.add_variant writes
    variants.add_variant(session, run_id=run.id, fields={**fields, "artifact_path": "runs/x"})
    make_variant(session, run.id, "keras", accuracy=0.9, size_bytes=10)
    session.commit()
    session.expunge_all()

    stored = {v.format: v for v in variants.list_variants(session, run_ids=[run.id])}
    back = VariantPublic.of(stored["tflite-int8"]).model_dump(mode="json")
    for k, v in PROTOCOL.items():
        assert back[k] == v, k
        assert type(back[k]) is type(v), k
    assert back["extra"] == EXTRA
    old = VariantPublic.of(stored["keras"]).model_dump(mode="json")
    assert all(old[k] is None for k in VARIANT_PROTOCOL_FIELDS)
