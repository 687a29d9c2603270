"""The predict page in a real browser over a live server: keyboard only, with and without script."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from e2e.ui_browser import (
    ACTION_TIMEOUT_MS,
    blocked_urls,
    has_visible_focus,
    screenshot,
    tab_to,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MODEL = "heart-failure"
PAGE = f"/ui/models/{MODEL}/predict"
# A random draw from 50 rows may repeat the row shown; this many draws all repeating it
# is a one-in-50**5 chance.
RANDOM_TRIES = 5
_VALUES = (
    "() => Object.fromEntries([...document.querySelectorAll('[data-feature]')]"
    ".map((e) => [e.dataset.feature, e.value]))"
)


def form_values(page: Any) -> dict[str, str]:
    values: dict[str, str] = page.evaluate(_VALUES)
    return values


def as_record(values: dict[str, str]) -> dict[str, float]:
    return {name: float(value) for name, value in values.items()}


@pytest.fixture
def page_without_script(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_fill_and_submit_the_form_with_the_keyboard(shared_ui, page):
    live_ui = shared_ui
    page.goto(f"{live_ui}{PAGE}")
    tab_to(page, "#feature-0")  # age
    assert has_visible_focus(page)
    page.keyboard.press("Control+A")
    page.keyboard.type("72")
    tab_to(page, "#feature-1")  # anaemia, a select: typing picks the option
    page.keyboard.type("true")
    tab_to(page, ".predict-actions button[type=submit]")
    assert has_visible_focus(page)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    values = form_values(page)
    assert values["age"] == "72"
    assert values["anaemia"] == "1"
    shown = float(page.locator("#result-probability").get_attribute("value"))
    api = page.request.post(f"{live_ui}/v1/models/{MODEL}/predict", data=as_record(values))
    assert api.ok, api.text()
    assert shown == api.json()["probability"]
    assert page.locator("#result-class").inner_text() == api.json()["class_name"]
    assert page.locator("#bar").is_visible()
    threshold = float(page.locator("#result-threshold").get_attribute("value"))
    mark = float(page.locator("#bar-threshold").get_attribute("x1"))
    assert mark == pytest.approx(
        threshold * float(page.locator("#bar").get_attribute("width")), abs=0.01
    )
    screenshot(page, "predict-result")

    # A refused value is named beside its field, the other values kept.
    tab_to(page, "#feature-8")  # serum_sodium, an integer
    page.keyboard.press("Control+A")
    page.keyboard.type("136.5")
    tab_to(page, ".predict-actions button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("#feature-8-problem").inner_text() == "136.5 is not a whole number"
    assert form_values(page)["age"] == "72"
    assert page.locator("#result").count() == 0
    screenshot(page, "predict-refused")
    assert blocked_urls(page) == []


def draw_until_changed(page: Any, first: dict[str, str], draw: Any) -> dict[str, str]:
    """Draw random examples until the form differs from ``first`` (a few tries)."""
    drawn = first
    for _ in range(RANDOM_TRIES):
        draw()
        drawn = form_values(page)
        if drawn != first:
            break
    assert drawn != first
    assert set(drawn) == set(first)
    return drawn


def test_the_random_example_button_with_and_without_script(shared_ui, page, page_without_script):
    live_ui = shared_ui
    # With script: the form is refilled in place.
    page.goto(f"{live_ui}{PAGE}")
    tab_to(page, "#random-example")
    assert has_visible_focus(page)

    def refill() -> None:
        page.locator("#example-status").evaluate("(e) => { e.textContent = ''; }")
        page.keyboard.press("Enter")
        page.locator("#example-status", has_text="random example").wait_for()

    draw_until_changed(page, form_values(page), refill)
    assert page.url == f"{live_ui}{PAGE}"  # not reloaded
    screenshot(page, "predict-random-example")
    assert blocked_urls(page) == []

    # Without: the link reloads the page with a row the server drew; the form still predicts.
    bare = page_without_script
    bare.goto(f"{live_ui}{PAGE}")

    def reload() -> None:
        tab_to(bare, "#random-example")
        with bare.expect_navigation():
            bare.keyboard.press("Enter")

    drawn = draw_until_changed(bare, form_values(bare), reload)
    assert "example=random" in bare.url
    tab_to(bare, ".predict-actions button[type=submit]")
    with bare.expect_navigation():
        bare.keyboard.press("Enter")
    assert float(bare.locator("#result-probability").get_attribute("value")) > 0
    assert form_values(bare) == drawn
