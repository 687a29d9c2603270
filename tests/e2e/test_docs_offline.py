"""The API docs (/docs, /redoc) render in a browser with every other host unreachable."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.ui_browser import blocked_urls, screenshot, start_ui_server, stop_ui_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def docs_ui(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One live server for the module: the docs only read."""
    folder = tmp_path_factory.mktemp("docs")
    home = folder / "home"
    shutil.copytree(trained_home, home)
    base, process = start_ui_server(home, folder / "logs")
    try:
        yield base
    finally:
        stop_ui_server(process)


def test_swagger_ui_lists_the_operations_offline(docs_ui, page):
    page.goto(f"{docs_ui}/docs")
    operation = page.locator(".opblock-summary", has_text="/v1/models/{name}/predict").first
    operation.wait_for()
    assert "POST" in operation.inner_text()
    assert page.locator(".opblock").count() > 10
    screenshot(page, "docs")
    assert blocked_urls(page) == []


def test_redoc_renders_offline(docs_ui, page):
    page.goto(f"{docs_ui}/redoc")
    page.get_by_text("/v1/models/{name}/predict").first.wait_for(state="attached")
    page.locator("h1", has_text="tabops").first.wait_for()
    screenshot(page, "redoc")
    assert blocked_urls(page) == []
