"""Issue 16 items 5 and 6 in Chromium: a sweep over technique settings (and the width
multiplier, and sets of exports) launched from the form; the form shows only the fields that
apply, spells techniques out, marks datasets this server does not have, and uploads an .npz."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

from runspec.datasets import missing_files
from tests.browser.conftest import Dashboard

pytestmark = pytest.mark.browser


def test_a_sparsity_and_width_sweep_launched_from_the_form(dashboard: Dashboard, live_stack: Any, second_worker: Any):
    # second_worker (tests/browser/conftest.py): the four runs train two at a time
    exp = f"ui-tech-sweep-{secrets.token_hex(3)}"
    page = dashboard.open("/launch?mode=sweep")
    page.locator('[data-path="name"] input').fill("sparsity-sweep")
    page.locator('[data-path="experiment"] input').fill(exp)
    page.locator('[data-path="training.epochs"] input').fill("1")
    page.locator('[data-path="dataset.limit_train"] input').fill("300")
    page.locator('[data-path="techniques"] > .toolbar select').select_option("pruning")
    page.locator('[data-path="techniques.0.epochs"] input').fill("1")
    rows = page.locator("#sweep-editor .sweep-row")
    # the default row varies the learning rate: make it the pruning target instead
    rows.nth(0).locator("select").select_option("techniques.0.target_sparsity")
    rows.nth(0).locator("input").fill("0.5, 0.75")
    page.locator("#sweep-add").click()
    rows.nth(1).locator("select").select_option("model.width_multiplier")
    rows.nth(1).locator("input").fill("0.5, 1")
    page.locator("#sweep-count", has_text="4").wait_for()
    # sets of exports are a sweep axis too (checked by the server's count, not launched)
    page.locator("#sweep-add").click()
    rows.nth(2).locator("select").select_option("exports")
    rows.nth(2).locator("input").fill("float32+int8, float16")
    page.locator("#sweep-count", has_text="8").wait_for()
    rows.nth(2).locator("button", has_text="Remove").click()
    page.locator("#sweep-count", has_text="4").wait_for()
    page.locator("#launch-submit").click()
    page.wait_for_url(f"**/?experiment={exp}")
    listed = live_stack.client.http.get("/api/runs", params={"experiment": exp}).json()
    assert listed["count"] == 4
    grid = {
        (r["spec"]["techniques"][0]["target_sparsity"], r["spec"]["model"]["width_multiplier"]) for r in listed["data"]
    }
    assert grid == {(0.5, 0.5), (0.5, 1.0), (0.75, 0.5), (0.75, 1.0)}
    for r in listed["data"]:
        done = live_stack.client.wait_terminal(r["id"], timeout=600)
        assert done["status"] == "succeeded", done["error"]


def test_the_form_shows_what_applies_and_names_things(dashboard: Dashboard, live_stack: Any, tmp_path: Path):
    page = dashboard.open("/launch")
    momentum = page.locator('[data-path="training.optimizer.momentum"]')
    nesterov = page.locator('[data-path="training.optimizer.nesterov"]')
    decay = page.locator('[data-path="training.optimizer.weight_decay"]')
    optimizer = page.locator('[data-path="training.optimizer.name"] select')
    expect(momentum).to_be_hidden()  # adam: no momentum, no Nesterov, no weight decay
    expect(nesterov).to_be_hidden()
    expect(decay).to_be_hidden()
    optimizer.select_option("sgd")
    expect(momentum).to_be_visible()
    expect(nesterov).to_be_visible()
    optimizer.select_option("adamw")
    expect(decay).to_be_visible()
    expect(momentum).to_be_hidden()
    step_epochs = page.locator('[data-path="training.schedule.step_epochs"]')
    expect(step_epochs).to_be_hidden()  # a constant schedule has no steps
    page.locator('[data-path="training.schedule.name"] select').select_option("step")
    expect(step_epochs).to_be_visible()

    # techniques are spelled out
    picker = page.locator('[data-path="techniques"] > .toolbar select')
    labels = picker.locator("option").all_inner_texts()
    assert "Quantization-aware training" in labels and "Weight clustering" in labels
    assert not any(label in ("Qat", "qat") for label in labels)

    # datasets this server does not have are marked, with the reason
    for name in ("mnist", "fashion_mnist", "cifar10"):
        folder, missing = missing_files(name)
        option = page.locator(f'[data-path="dataset.name"] select option[value="{name}"]')
        assert option.is_disabled() == bool(missing), name
        if missing:
            assert "not on this server" in option.inner_text() and missing[0] in option.get_attribute("title")

    # the upload dataset: its id field and an upload widget appear, and a file fills the id
    upload_id = page.locator('[data-path="dataset.upload_id"]')
    expect(upload_id).to_be_hidden()
    page.locator('[data-path="dataset.name"] select').select_option("upload")
    expect(upload_id).to_be_visible()
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(
        path,
        x_train=rng.random((40, 8, 8), dtype=np.float32),
        y_train=rng.integers(0, 3, 40),
        x_test=rng.random((12, 8, 8), dtype=np.float32),
        y_test=rng.integers(0, 3, 12),
    )
    page.locator("#upload-file").set_input_files(str(path))
    expect(page.locator("#upload-status")).to_contain_text("as dataset #")
    dataset_id = int(upload_id.locator("input[type=number]").input_value())
    datasets = live_stack.client.http.get("/api/datasets").json()["data"]
    assert any(d["id"] == dataset_id and d["name"] == "tiny" for d in datasets)
    assert dashboard.console_errors == []


def test_zoo_architectures_show_their_own_fields(dashboard: Dashboard, live_stack: Any):
    """The zoo's input size and weights appear only for a zoo architecture, and the width
    multiplier only where the architecture has one (MobileNet's alpha, the built-in ones)."""
    page = dashboard.open("/launch")
    architecture = page.locator('[data-path="model.architecture"] select')
    width = page.locator('[data-path="model.width_multiplier"]')
    size = page.locator('[data-path="model.input_size"]')
    weights = page.locator('[data-path="model.weights"]')
    expect(architecture).to_be_visible()
    options = architecture.locator("option").evaluate_all("os => os.map(o => o.value)")
    assert {"mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "resnet50"} <= set(options)
    expect(size).to_be_hidden()  # seed_cnn
    expect(weights).to_be_hidden()
    expect(width).to_be_visible()
    architecture.select_option("mobilenet_v2")
    expect(size).to_be_visible()
    expect(weights).to_be_visible()
    expect(width).to_be_visible()
    assert weights.locator("select option").evaluate_all("os => os.map(o => o.value)") == ["none", "imagenet"]
    architecture.select_option("resnet50")
    expect(width).to_be_hidden()
    expect(size).to_be_visible()
    assert dashboard.console_errors == []
