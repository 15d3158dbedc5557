"""Issue 19 item 3 end to end: a teacher keeps per-epoch checkpoints through the real worker, a
student distils from its epoch-1 checkpoint with augmentation and mixup, and the run page shows
the teacher–student agreement next to the variants, in Chromium."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Dashboard
from tests.stack import tiny_spec

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / ".optiboard" / "screenshots"


@pytest.fixture(scope="module")
def distilled(live_stack: Any) -> dict[str, Any]:
    client = live_stack.client
    experiment = f"distil-{secrets.token_hex(3)}"
    teacher = client.submit(
        tiny_spec(
            "teacher",
            experiment=experiment,
            training={"epochs": 2, "batch_size": 32, "log_every_n_batches": 5, "checkpoint_every_epochs": 1},
        )
    )
    teacher = client.wait_terminal(teacher["id"], timeout=600)
    assert teacher["status"] == "succeeded", teacher["error"]
    student = client.submit(
        tiny_spec(
            "student",
            experiment=experiment,
            model={"architecture": "seed_cnn", "width_multiplier": 0.5},
            training={
                "epochs": 2,
                "batch_size": 32,
                "log_every_n_batches": 5,
                "augmentation": {"shift": 0.125},
                "mixup_alpha": 0.2,
            },
            techniques=[
                {
                    "name": "distillation",
                    "teacher_run_id": teacher["id"],
                    "teacher_epoch": 1,
                    "temperature": 4,
                    "temperature_schedule": "linear",
                    "temperature_end": 2,
                }
            ],
        )
    )
    student = client.wait_terminal(student["id"], timeout=600)
    assert student["status"] == "succeeded", student["error"]
    return {"teacher": teacher, "student": student}


def test_the_run_page_shows_the_agreement_beside_the_variants(
    dashboard: Dashboard, live_stack: Any, distilled: dict[str, Any]
) -> None:
    student, teacher = distilled["student"], distilled["teacher"]
    assert any("at epoch 1" in line for line in student["log_tail"])  # the checkpoint, not the final model
    series = live_stack.client.http.get(
        f"/api/runs/{student['id']}/metrics",
        params={"keys": "distillation/top1_agreement,distillation/mean_kl"},
    ).json()["series"]
    top1 = series["distillation/top1_agreement"]["values"][-1]
    kl = series["distillation/mean_kl"]["values"][-1]
    assert 0 <= top1 <= 1 and kl >= 0

    page = dashboard.open(f"/runs/{student['id']}")
    block = page.locator("#run-agreement")
    expect(block).to_contain_text(f"top-1 agreement {100 * top1:.1f}%")
    expect(block).to_contain_text(f"{float(f'{kl:.3g}')} nats")
    expect(block.locator(f"a[href='/runs/{teacher['id']}']")).to_have_text(f"run #{teacher['id']}")
    expect(block).to_contain_text("at epoch 1")
    # inside the Variants card, above its table
    card = page.locator("section.card", has=page.locator("#run-agreement"))
    expect(card.locator("h2")).to_have_text("Variants")
    expect(card.locator("table")).to_be_visible()
    expect(page.locator("#run-context")).to_contain_text("temperature 4 → 2 (linear)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    card.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "run-distillation.png"))
    assert dashboard.csp_violations(page) == [] and dashboard.console_errors == []

    # a run without distillation shows no agreement block
    page = dashboard.open(f"/runs/{teacher['id']}")
    expect(page.locator("#run-headline")).to_be_visible()
    expect(page.locator("section.card h2", has_text="Variants")).to_be_visible()
    assert page.locator("#run-agreement").count() == 0


def test_the_launch_form_offers_augmentation_mixup_and_schedules(dashboard: Dashboard) -> None:
    """The new options come from the spec's schema: augmentation and mixup under training, the
    end value of a T or α schedule only once a schedule is chosen."""
    page = dashboard.open("/launch")
    shift = page.locator('[data-path="training.augmentation.shift"]')
    expect(shift).to_be_visible()
    expect(page.locator('[data-path="training.augmentation.horizontal_flip"]')).to_contain_text("not digits")
    expect(page.locator('[data-path="training.mixup_alpha"]')).to_be_visible()
    expect(page.locator('[data-path="training.checkpoint_every_epochs"]')).to_be_visible()
    page.locator('[data-path="techniques"] > .toolbar select').select_option("distillation")
    end = page.locator('[data-path="techniques.0.temperature_end"]')
    expect(end).to_be_hidden()  # constant: no end value
    page.locator('[data-path="techniques.0.temperature_schedule"] select').select_option("cosine")
    expect(end).to_be_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    shift.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "launch-augmentation.png"))
    end.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "launch-distillation.png"))
    assert dashboard.console_errors == []
