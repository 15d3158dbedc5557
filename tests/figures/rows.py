"""Crafted compare rows for the figure tests (plain dicts, the shape the compare route builds)."""

from __future__ import annotations

from typing import Any

XSS = "<img src=x onerror=alert(1)>"


def row(
    run_id: int,
    name: str,
    fmt: str,
    technique: str,
    accuracy: float | None,
    size: float | None,
    p50: float | None = 0.05,
    p95: float | None = 0.08,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "run_name": name,
        "variant_id": run_id * 10 + len(fmt),
        "format": fmt,
        "technique": technique,
        "accuracy": accuracy,
        "precision": accuracy,
        "recall": accuracy,
        "f1": accuracy,
        "size_bytes": size,
        "gzip_bytes": None if size is None else size * 0.8,
        "params": 100_000,
        "nonzero_params": 50_000,
        "latency_p50_ms": p50,
        "latency_p95_ms": p95,
    }


def crafted() -> list[dict[str, Any]]:
    """Front: (100, .90) (200, .95) (400, .97); dominated: (300, .94) (500, .96) (250, .90)."""
    return [
        row(1, "small", "tflite-int8", "pruning", 0.90, 100),
        row(2, "mid", "tflite-float16", "baseline", 0.95, 200),
        row(3, "big", "keras", "baseline", 0.97, 400),
        row(4, "worse-mid", "tflite-float32", "qat", 0.94, 300),
        row(5, "worse-big", "keras", "qat", 0.96, 500),
        row(6, "same-acc-bigger", "tflite-int8", "clustering", 0.90, 250),
    ]
