"""The compare table's "vs control" columns (issue 19 item 2): a technique run's variant against
its same-budget control's model of the same format, else the control's headline."""

from __future__ import annotations

from typing import Any

import pytest

from backend.figures.table import CONTROL_COLUMNS, compare_rows, rows_csv
from tests.figures.rows import row


def variant(run_id: int, fmt: str, accuracy: float, size: int, gzip: int) -> dict[str, Any]:
    return {**row(run_id, "", fmt, "", accuracy, size), "gzip_bytes": gzip, "f1": accuracy - 0.01, "id": run_id * 10}


PRUNED = {"id": 1, "name": "prune", "kind": "train", "spec": {"techniques": [{"name": "pruning"}]}, "control_run_id": 2}
CONTROL = {"id": 2, "name": "prune (control)", "kind": "train", "spec": {}, "control_of_run_id": 1}
PLAIN = {"id": 3, "name": "other", "kind": "train", "spec": {}}
CONTROL_VARIANTS = [variant(2, "keras", 0.93, 1000, 900), variant(2, "tflite-int8", 0.92, 260, 230)]


def test_each_variant_is_set_against_the_controls_model_of_its_format() -> None:
    mine = [variant(1, "keras", 0.90, 1000, 280), variant(1, "tflite-int8", 0.915, 255, 80)]
    rows, _ = compare_rows([PRUNED], mine, controls={2: CONTROL_VARIANTS})
    keras, int8 = rows
    assert (keras["control_run_id"], keras["control_format"]) == (2, "keras")
    assert keras["vs_control_accuracy"] == pytest.approx(-0.03)
    assert keras["vs_control_gzip_ratio"] == pytest.approx(280 / 900) and keras["vs_control_size_ratio"] == 1.0
    assert int8["control_format"] == "tflite-int8"
    assert int8["vs_control_accuracy"] == pytest.approx(-0.005)
    assert int8["vs_control_f1"] == pytest.approx(-0.005)
    assert int8["vs_control_gzip_ratio"] == pytest.approx(80 / 230)


def test_a_format_the_control_lacks_is_set_against_its_headline() -> None:
    rows, _ = compare_rows([PRUNED], [variant(1, "tflite-float16", 0.9, 500, 400)], controls={2: CONTROL_VARIANTS})
    assert rows[0]["control_format"] == "tflite-int8"
    assert rows[0]["vs_control_accuracy"] == pytest.approx(0.9 - 0.92)


def test_without_a_control_or_its_model_the_columns_are_empty_and_exported() -> None:
    mine = [variant(1, "keras", 0.9, 1000, 280), variant(3, "keras", 0.8, 1000, 900)]
    no_model, _ = compare_rows([PRUNED, PLAIN], mine, controls={2: []})  # the control has not finished
    not_read, _ = compare_rows([PRUNED, PLAIN], mine)
    for rows in (no_model, not_read):
        assert all(r[c] is None for r in rows for c in CONTROL_COLUMNS[1:])
    assert [r["control_run_id"] for r in no_model] == [2, None]
    header = rows_csv(no_model).splitlines()[0].split(",")
    assert set(CONTROL_COLUMNS) <= set(header)
