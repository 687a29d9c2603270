"""The features page in a real browser over a live server: keyboard only, offline, screenshot."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import make_registry
from e2e.ui_browser import blocked_urls, screenshot, start_ui_server, stop_ui_server
from loans_data import MODEL, VIEW, make_loans, write_project
from tabops.config import Settings
from tabops.feature_store.base import OnlineRow
from tabops.feature_store.offline import materialize
from tabops.feature_store.sql import open_feature_store
from tabops.project import load_project
from tabops.training.register import train_project

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGE = "/ui/features"
MAX_TABS = 40  # Tab presses allowed to reach a control: the page has about 10 stops


@pytest.fixture
def loans_ui(tmp_path: Path) -> Iterator[tuple[str, OnlineRow]]:
    """A live server over a home with the loans model and its features; a stored row."""
    home = tmp_path / "home"
    folder = write_project(tmp_path / "project", make_loans())
    project, _ = load_project(folder)
    train_project(project, folder, make_registry(home))
    store = open_feature_store(Settings(home=home))
    materialize(project, folder, home, store, build=True)
    row = next(row for row in (store.get(VIEW, str(i)) for i in range(1000, 1120)) if row)
    store.engine.dispose()
    base, process = start_ui_server(home, tmp_path / "live-ui")
    try:
        yield base, row
    finally:
        stop_ui_server(process)
        shutil.rmtree(home, ignore_errors=True)


def tab_to(page: Any, selector: str) -> None:
    """Press Tab until the element ``selector`` names has the focus."""
    for _ in range(MAX_TABS):
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


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
