"""Which device's measurements a comparison shows (issue 18 item 4): pure functions over plain
mappings, like the rest of backend.figures.

A variant carries the figures the training worker measured itself ("worker",
runspec.vocabulary.OWN_DEVICE); a device measurement carries the same latency protocol's
figures taken on a labelled device. Choosing a device replaces the device-dependent figures of
every variant with that device's (None where the variant was not measured there), so the
table, the latency chart and a latency or memory x axis all speak of one machine. Size,
parameters, accuracy and the microcontroller estimate do not depend on the machine and stay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runspec.vocabulary import OWN_DEVICE, VARIANT_PROTOCOL_FIELDS

# Figures that depend on the machine that measured them (the rest of a variant does not).
DEVICE_DEPENDENT: tuple[str, ...] = (
    "latency_p50_ms",
    "latency_p95_ms",
    # the microcontroller estimate is read from the graph, the same on every machine
    *(f for f in VARIANT_PROTOCOL_FIELDS if not f.startswith("mcu_")),
)
# The per-device columns of the CSV: one of each per device measured.
DEVICE_COLUMNS: tuple[str, ...] = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_unstable")


def on_device(
    variants: Sequence[Mapping[str, Any]], measured: Mapping[tuple[int, str], Mapping[str, Any]], device: str
) -> list[dict[str, Any]]:
    """The variants as measured on `device`: copies with the DEVICE_DEPENDENT figures replaced
    by that device's (`measured[(variant id, device)]["figures"]`, None where it has no
    measurement) and `device` set; OWN_DEVICE leaves the figures as the worker measured them."""
    out = []
    for v in variants:
        doc = {**v, "device": device}
        if device != OWN_DEVICE:
            figures = (measured.get((int(v["id"]), device)) or {}).get("figures") or {}
            doc.update({k: figures.get(k) for k in DEVICE_DEPENDENT})
        out.append(doc)
    return out


def device_columns(
    rows: Sequence[Mapping[str, Any]], measured: Mapping[tuple[int, str], Mapping[str, Any]], devices: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows with one `<figure>@<device>` column per DEVICE_COLUMNS figure and device, so an export
    carries every device's figures whichever device the page shows; and those column names."""
    names = [f"{k}@{d}" for d in devices for k in DEVICE_COLUMNS]
    out = []
    for row in rows:
        extra: dict[str, Any] = {}
        for d in devices:
            figures = (measured.get((int(row.get("variant_id") or 0), d)) or {}).get("figures") or {}
            extra.update({f"{k}@{d}": figures.get(k) for k in DEVICE_COLUMNS})
        out.append({**row, **extra})
    return out, names
