"""The Models page in Chromium against the real API: upload a Keras 3 model through the widget,
read its per-layer preflight; a hostile model's refusal names the layer (issue 17)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import keras  # noqa: E402, F401 - marks the tensorflow tier; the builders use it

from tests.browser.conftest import Dashboard  # noqa: E402
from tests.models import keras_models  # noqa: E402

pytestmark = pytest.mark.browser


def test_upload_shows_the_preflight_table_and_refusals_name_the_layer(
    dashboard: Dashboard, live_stack: Any, tmp_path: Path
) -> None:
    keras_models.keras3_cnn(tmp_path / "cnn.keras")
    keras_models.keras3_lambda(tmp_path / "lambda.keras", tmp_path / "CANARY")
    page = dashboard.open("/models")
    page.set_input_files("#model-file", str(tmp_path / "cnn.keras"))
    page.get_by_role("button", name="Upload and check").click()
    table = page.locator("#preflight-table")
    table.wait_for(timeout=120_000)
    bn = table.locator("tr", has_text="BatchNormalization")
    assert "folded" in bn.inner_text()
    assert bn.locator(".support-fix").count() >= 1
    assert page.locator("#models-table tr", has_text="cnn.keras").count() == 1
    page.set_input_files("#model-file", str(tmp_path / "lambda.keras"))
    page.get_by_role("button", name="Upload and check").click()
    alert = page.get_by_role("alert")
    alert.wait_for(timeout=60_000)
    assert "config.json › layers" in alert.inner_text() and "Lambda" in alert.inner_text()
    assert not (tmp_path / "CANARY").exists()
    assert dashboard.csp_violations(page) == []
    assert dashboard.console_errors == [] or all("422" in e for e in dashboard.console_errors)
