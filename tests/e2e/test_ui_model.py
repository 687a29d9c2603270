"""The model page in a real browser over a live server: promote and roll back by keyboard only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api.test_ui_model import add_second_version
from conftest import SEED_REQUEST, make_registry
from e2e.ui_browser import has_visible_focus, screenshot, tab_to

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MODEL = "heart-failure"


@pytest.fixture
def two_versions(home: Path) -> Path:
    """The home with a second version, registered before the live server starts."""
    add_second_version(make_registry(home))
    return home


def served_version(page: Any, base: str) -> int:
    answer = page.request.post(
        f"{base}/predict", data=SEED_REQUEST, headers={"content-type": "application/json"}
    )
    assert answer.ok, answer.text()
    version: int = answer.json()["version"]
    return version


def test_promote_and_roll_back_with_the_keyboard(two_versions, live_ui, page):
    base = live_ui
    page.goto(f"{base}/ui/models/{MODEL}")
    assert page.locator("#version-2").is_visible()
    screenshot(page, "model-page")
    assert served_version(page, base) == 1

    # Promote: the form's version list starts at the newest version, the alias at production.
    tab_to(page, "#promote-version")
    assert page.locator("#promote-version").input_value() == "2"
    tab_to(page, "#promote-alias")
    assert page.locator("#promote-alias").input_value() == "production"
    tab_to(page, "form.promote button[type=submit]")
    assert has_visible_focus(page)
    page.keyboard.press("Enter")
    page.wait_for_url("**/promote?**")
    assert "production: 1 → 2" in " ".join(page.locator("#change").inner_text().split())
    screenshot(page, "model-promote-review")
    tab_to(page, ".confirm-form button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/ui/models/{MODEL}")
    assert "heart-failure@production: 1 → 2" in page.locator(".flashes").inner_text()
    assert served_version(page, base) == 2

    # Roll back: the alias row offers it, the review names where it goes.
    tab_to(page, "#alias-production a")
    page.keyboard.press("Enter")
    page.wait_for_url("**/rollback?**")
    assert "production: 2 → 1" in " ".join(page.locator("#change").inner_text().split())
    tab_to(page, ".confirm-form button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/ui/models/{MODEL}")
    assert "rolled back: 2 → 1" in page.locator(".flashes").inner_text()
    assert served_version(page, base) == 1
    screenshot(page, "model-page-rolled-back")
