"""Issue 20: a study from an uploaded model, from the dashboard. The Models page's "Study…"
action opens the study launch form with that model chosen as the baseline; starting it shows the
study waiting for the baseline run the API created, and, as that run fails on the worker (the
model row here has no file behind it), the study page shows it `failed` with the reason.

The model is written through the store (nothing is uploaded, nothing trains), so the only worker
job is the baseline run, which fails at once. Set STUDY_UPLOAD_SHOTS=DIR to keep screenshots."""

from __future__ import annotations

import os
import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Dashboard

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("STUDY_UPLOAD_SHOTS")


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"study-upload-{name}.png"), full_page=True)


def _stored_model(live_stack: Any) -> tuple[int, str]:
    from backend.store import uploaded_models
    from backend.store.db import make_engine, make_sessionmaker, unit_of_work

    name = f"user-cnn-{secrets.token_hex(3)}"
    engine = make_engine(live_stack.settings.database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as s:
            record = uploaded_models.add_model(
                s,
                name=name,
                original_filename="user.keras",
                filename=f"models/{name}.keras",  # no file: the baseline run fails on the worker
                sha256="0" * 64,
                size_bytes=1000,
                format="keras",
                keras_flavour="tf_keras",
                status="ready",
                preflight={
                    "kind": "image classifier",
                    "params": 2970,
                    "inputs": [{"shape": [None, 8, 8, 1]}],
                    "outputs": [{"shape": [None, 10]}],
                    "techniques": {
                        "prune": {"status": "yes", "reason": None},
                        "qat": {"status": "yes", "reason": None},
                        "cluster": {"status": "no", "reason": "tfmot cannot cluster layer 'odd'"},
                        "int8": {"status": "yes", "reason": None},
                    },
                },
            )
            return record.id, name
    finally:
        engine.dispose()


def test_the_models_page_starts_a_study_from_a_model(dashboard: Dashboard, live_stack: Any) -> None:
    model_id, name = _stored_model(live_stack)
    page = dashboard.open("/models")
    row = page.locator("tr", has_text=name)
    expect(row.get_by_role("link", name="Study…")).to_be_visible()
    _shot(page, "models")
    row.get_by_role("link", name="Study…").click()
    page.wait_for_url(f"**/studies?model={model_id}")
    expect(page.locator("#study-baseline-kind")).to_have_value("model")
    expect(page.locator("#study-baseline-model")).to_have_value(str(model_id))
    expect(page.locator("#study-baseline-note")).to_contain_text("Distillation is left out")
    spec = page.locator("#study-spec").input_value()
    assert f'"baseline_model_id": {model_id}' in spec and '"name": "digits"' in spec and "baseline_run_id" not in spec
    _shot(page, "form")
    page.get_by_role("button", name="Start study").click()
    page.wait_for_url("**/studies/*")
    status = page.locator("#study-status")
    expect(page.locator("#study-baseline-link")).to_contain_text(f"uploaded model #{model_id}")
    expect(page.locator("#study-left-out")).to_contain_text("clustering — clustering cannot run on model")
    _shot(page, "waiting")
    expect(status).to_contain_text("the baseline run", timeout=5_000)  # waiting, or already failed
    expect(status.locator(".badge")).to_have_text("failed", timeout=90_000)
    expect(status).to_contain_text("ended failed")
    expect(page.get_by_role("button", name="Extend +10 trials")).to_be_disabled()
    expect(page.locator("#study-no-reference")).to_contain_text("the baseline run did not succeed")
    _shot(page, "failed")
    assert dashboard.console_errors == [] and dashboard.csp_violations(page) == []
