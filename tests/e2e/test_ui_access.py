"""Logging in and out of the web UI in a real browser, with the keyboard alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from e2e.ui_browser import blocked_urls, screenshot
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.security.keys import KeyStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MODEL = "heart-failure"
MAX_TABS = 30  # the login page has a handful of focus stops before its key field


@pytest.fixture
def reader_token(home: Path) -> str:
    """A read key, created before the live server starts (so it needs logins at once)."""
    keys = KeyStore(create_database_engine(Settings(home=home).metadata_url))
    keys.create("ops", "admin")
    _key, token = keys.create("browser-reader", "read")
    return token


def tab_to(page: Any, selector: str) -> None:
    for _ in range(MAX_TABS):
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def focus_outline(page: Any) -> str:
    return str(page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle"))


def test_log_in_and_out_with_the_keyboard_only(reader_token, live_ui, page):
    page.goto(f"{live_ui}/ui")
    assert page.url.startswith(f"{live_ui}/ui/login?next=")
    assert page.get_by_label("API key").is_visible()
    screenshot(page, "login")

    tab_to(page, "#key")
    assert focus_outline(page) != "none"
    page.keyboard.type(reader_token)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == f"{live_ui}/ui"
    assert page.locator(f"#model-{MODEL}").is_visible()
    assert "browser-reader" in page.locator("header").inner_text()
    screenshot(page, "overview")

    tab_to(page, "button.link-button")
    assert focus_outline(page) != "none"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.startswith(f"{live_ui}/ui/login")
    assert "logged out" in page.locator(".flashes").inner_text()
    page.goto(f"{live_ui}/ui")
    assert page.url.startswith(f"{live_ui}/ui/login")
    assert blocked_urls(page) == []


def test_a_wrong_key_is_refused_in_the_browser(reader_token, live_ui, page):
    page.goto(f"{live_ui}/ui/login")
    page.get_by_label("API key").fill("tabops_nothing")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "not valid" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("API key").get_attribute("aria-invalid") == "true"


def test_an_open_server_shows_the_overview_without_login(live_ui, page):
    page.goto(f"{live_ui}/")
    assert page.url == f"{live_ui}/ui"
    assert page.locator(f"#model-{MODEL}").is_visible()
    assert "no login needed" in page.locator("header").inner_text()
    screenshot(page, "overview-open")
