"""Logging in and out of the web UI in a real browser, with the keyboard alone."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.ui_browser import blocked_urls, screenshot, start_ui_server, stop_ui_server, tab_to
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.security.keys import KeyStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MODEL = "heart-failure"


@pytest.fixture(scope="module")
def keyed_ui(
    trained_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """A live server whose home has keys (so pages need a login), and a read key's token.

    Shared by the module's tests: each logs in (or fails to) in a browser context of its
    own, and a logout ends only that context's session.
    """
    folder = tmp_path_factory.mktemp("keyed-ui")
    home = folder / "home"
    shutil.copytree(trained_home, home)
    keys = KeyStore(create_database_engine(Settings(home=home).metadata_url))
    keys.create("ops", "admin")
    _key, token = keys.create("browser-reader", "read")
    keys.engine.dispose()
    base, process = start_ui_server(home, folder / "live-ui")
    try:
        yield base, token
    finally:
        stop_ui_server(process)


def focus_outline(page: Any) -> str:
    return str(page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle"))


def test_log_in_and_out_with_the_keyboard_only(keyed_ui, page):
    live_ui, reader_token = keyed_ui
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


def test_a_wrong_key_is_refused_in_the_browser(keyed_ui, page):
    live_ui, _token = keyed_ui
    page.goto(f"{live_ui}/ui/login")
    page.get_by_label("API key").fill("tabops_nothing")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "not valid" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("API key").get_attribute("aria-invalid") == "true"


def test_an_open_server_shows_the_overview_without_login(shared_ui, page):
    live_ui = shared_ui
    page.goto(f"{live_ui}/")
    assert page.url == f"{live_ui}/ui"
    assert page.locator(f"#model-{MODEL}").is_visible()
    assert "no login needed" in page.locator("header").inner_text()
    screenshot(page, "overview-open")
