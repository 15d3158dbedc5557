"""Labels for rows of the compare table (one row = one measured variant of a run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.figures.text import esc


def technique_of(row: Mapping[str, Any]) -> str:
    return str(row.get("technique") or "baseline")


def variant_label(row: Mapping[str, Any]) -> str:
    """Escaped, unique per variant: '#12 my-run · tflite-int8'. The run id keeps two runs
    with the same name apart on categorical axes."""
    return f"#{row.get('run_id')} {esc(row.get('run_name'))} · {esc(row.get('format'))}"
