"""The launch form's .npz upload says what it found and forgets a refusal once a good file is
uploaded; the datasets this server cannot train on are named with the reason, on the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

from runspec.datasets import missing_files
from tests.browser.conftest import Dashboard

pytestmark = pytest.mark.browser


def _npz(path: Path, x_shape: tuple[int, ...], classes: int) -> Path:
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.random((40, *x_shape), dtype=np.float32),
        y_train=np.arange(40) % classes,
        x_test=rng.random((12, *x_shape), dtype=np.float32),
        y_test=np.arange(12) % classes,
    )
    return path


def test_a_good_upload_after_a_refused_one_clears_the_error_and_summarises_the_data(
    dashboard: Dashboard, live_stack: Any, tmp_path: Path
) -> None:
    page = dashboard.open("/launch")
    page.locator('[data-path="dataset.name"] select').select_option("upload")
    error = page.locator('[data-path="dataset.upload_id"] .field-error')
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((4, 2), np.float32))  # the other three arrays missing
    page.locator("#upload-file").set_input_files(str(bad))
    expect(error).to_contain_text("y_train")
    page.locator("#upload-file").set_input_files(str(_npz(tmp_path / "good.npz", (8, 8), 3)))
    status = page.locator("#upload-status")
    expect(status).to_contain_text("as dataset #")
    expect(status).to_contain_text("40 train / 12 test examples, input 8×8 (float32), 3 classes")
    expect(error).to_have_text("")
    # the refused upload's 422 is the only thing the console saw
    assert [e for e in dashboard.console_errors if "status of 422" not in e] == []


def test_unavailable_datasets_are_named_with_the_reason_on_the_page(dashboard: Dashboard, live_stack: Any) -> None:
    page = dashboard.open("/launch")
    page.locator('[data-path="dataset.name"] select').wait_for()
    missing = {name: m for name in ("mnist", "fashion_mnist", "cifar10") if (m := missing_files(name)[1])}
    note = page.locator("#dataset-unavailable")
    if not missing:
        expect(note).to_have_count(0)
        return
    for name, files in missing.items():
        expect(note).to_contain_text(name)
        expect(note).to_contain_text(files[0])
    assert dashboard.console_errors == []


def test_the_sweep_offers_only_parameters_that_apply(dashboard: Dashboard, live_stack: Any) -> None:
    """Momentum with adam, step epochs with a constant schedule: the server refuses such a grid
    (the value would be ignored), so the form does not offer it until the sibling allows it."""
    page = dashboard.open("/launch?mode=sweep")
    options = page.locator("#sweep-editor .sweep-row").nth(0).locator("select option")
    options.first.wait_for(state="attached")

    def offered() -> set[str]:
        return set(options.evaluate_all("os => os.map(o => o.value)"))

    paths = offered()
    assert "training.optimizer.learning_rate" in paths
    assert not {"training.optimizer.momentum", "training.optimizer.nesterov", "training.schedule.step_epochs"} & paths
    page.locator('[data-path="training.optimizer.name"] select').select_option("sgd")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#sweep-editor .sweep-row select option')]"
        ".some(o => o.value === 'training.optimizer.momentum')"
    )
    assert {"training.optimizer.momentum", "training.optimizer.nesterov"} <= offered()
    page.locator('[data-path="training.schedule.name"] select').select_option("step")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#sweep-editor .sweep-row select option')]"
        ".some(o => o.value === 'training.schedule.step_epochs')"
    )
    assert dashboard.console_errors == []
