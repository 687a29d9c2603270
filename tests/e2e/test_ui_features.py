"""The features page in a real browser over a live server: keyboard only, offline, screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.ui_browser import blocked_urls, screenshot, start_ui_server, stop_ui_server, tab_to
from loans_data import MODEL, VIEW, LoansHome
from tabops.config import Settings
from tabops.feature_store.base import OnlineRow
from tabops.feature_store.sql import open_feature_store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGE = "/ui/features"


@pytest.fixture
def loans_ui(loans_home: LoansHome, tmp_path: Path) -> Iterator[tuple[str, OnlineRow]]:
    """A live server over a home with the loans model and its features; a stored row."""
    store = open_feature_store(Settings(home=loans_home.home))
    row = next(row for row in (store.get(VIEW, str(i)) for i in range(1000, 1120)) if row)
    store.engine.dispose()
    base, process = start_ui_server(loans_home.home, tmp_path / "live-ui")
    try:
        yield base, row
    finally:
        stop_ui_server(process)


def test_look_up_an_entity_and_predict_it_with_the_keyboard(loans_ui, page):
    base, row = loans_ui
    page.goto(f"{base}/ui")
    tab_to(page, f"a[href='{PAGE}']")  # the nav's Features link
    with page.expect_navigation():
        page.keyboard.press("Enter")
    tab_to(page, "#entity-id")
    page.keyboard.type("999999")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("#entity-id-problem").inner_text() == "'999999' is not in the online store"

    tab_to(page, "#entity-id")
    page.keyboard.press("Control+A")
    page.keyboard.type(row.entity_id)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    cells = page.locator("td[data-feature]")
    assert cells.count() == len(row.values)
    screenshot(page, "ui-features-entity")

    tab_to(page, f"form[action='/ui/models/{MODEL}/predict'] button")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("#result-class").inner_text()
    assert page.locator("#entity-id").input_value() == row.entity_id
    assert blocked_urls(page) == []
