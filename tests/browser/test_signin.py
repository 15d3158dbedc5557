"""Issue 16 item 11: without the cookie the dashboard opens a sign-in page that takes a pasted
token, explains where to find one, and returns to the page the user asked for."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import VIEWPORT, WATCH_CSP

pytestmark = pytest.mark.browser


def test_a_signed_out_visitor_signs_in_with_a_pasted_token(chromium: Browser, live_stack: Any):
    context = chromium.new_context(viewport=VIEWPORT)
    context.add_init_script(WATCH_CSP)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_stack.url}/compare?runs=1,2")
    page.wait_for_url("**/login?next=%2Fcompare%3Fruns%3D1%2C2")
    expect(page.locator("h1")).to_have_text("Sign in to optiboard")
    help_text = page.locator("#token-help").inner_text()
    assert "optiboard token create" in help_text and ".optiboard/token" in help_text
    assert page.locator("text=Something went wrong").count() == 0

    page.locator("#token").fill("ob_not-a-real-token")
    page.locator("#signin-submit").click()
    expect(page.locator("#signin-error")).to_contain_text("refused")
    assert "/login" in page.url

    page.locator("#token").fill(f"  {live_stack.token}\n".strip())
    page.locator("#signin-submit").click()
    page.wait_for_url("**/compare?runs=1,2")
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["optiboard_token"]["httpOnly"] is True
    assert page.evaluate("window.__csp") == [] and errors == []

    # a refused sign-in link shows the same page, and the token leaves the address bar
    page.goto(f"{live_stack.url}/login?token=ob_revoked")
    expect(page.locator("#signin-error")).to_contain_text("refused")
    assert "token=" not in page.url
    context.close()
