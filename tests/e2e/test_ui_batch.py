"""The batch page in a real browser over a live server: upload with the keyboard, follow the
job as it runs, download the scored file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import HEART_CSV
from e2e.ui_browser import (
    blocked_urls,
    has_visible_focus,
    screenshot,
    start_ui_server,
    stop_ui_server,
    tab_to,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PlaywrightTimeout = pytest.importorskip("playwright.sync_api").TimeoutError

MODEL = "heart-failure"
PAGE = f"/ui/models/{MODEL}/batch"
HANG_MS = 120_000  # the longest job here takes seconds, even on a loaded 2-core machine
CHOOSER_TRIES = 3
CHOOSER_MS = 5_000
LONG_JOB_COPIES = 2_000
"""Copies of the 299 patients in the file whose progress is watched: six chunks of scoring."""
_PROGRESS = (
    "() => { const bar = document.getElementById('job-progress');"
    " return bar === null ? null : bar.value; }"
)


@pytest.fixture(scope="module")
def batch_ui(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live server shared by the module, its jobs reporting progress four times a second.

    A job reports every quarter of its lease: a lease of one second lets a job of a few
    seconds show its progress move.
    """
    folder = tmp_path_factory.mktemp("batch-ui")
    shutil.copytree(trained_home, folder / "home")
    settings = {"TABOPS_QUEUE__JOB_LEASE_SECONDS": "1"}
    base, process = start_ui_server(folder / "home", folder / "live-ui", settings)
    try:
        yield base
    finally:
        stop_ui_server(process)


def submit_with_the_keyboard(page: Any, base: str, source: Path) -> str:
    """Choose ``source`` and submit it from the batch page; the job page's id."""
    # A listener from the start has Playwright intercept file choosers before the page loads;
    # turned on only by expect_file_chooser, the first chooser was now and then missed.
    page.on("filechooser", lambda _chooser: None)
    page.goto(f"{base}{PAGE}")
    tab_to(page, "#batch-file")
    assert has_visible_focus(page)
    chooser = None
    for _ in range(CHOOSER_TRIES):  # a press that opened no chooser is repeated
        try:
            with page.expect_file_chooser(timeout=CHOOSER_MS) as opened:
                page.keyboard.press("Space")
        except PlaywrightTimeout:
            continue
        chooser = opened.value
        break
    assert chooser is not None, f"Space on the file input opened no chooser {CHOOSER_TRIES} times"
    chooser.set_files(str(source))
    tab_to(page, "#batch-submit")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/ui/jobs/" in page.url
    return str(page.url.rsplit("/", 1)[-1])


def test_upload_a_file_with_the_keyboard_follow_the_job_and_download_it(
    batch_ui: str, page: Any, tmp_path: Path
) -> None:
    source = tmp_path / "patients.csv"
    pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"]).to_csv(source, index=False)
    job_id = submit_with_the_keyboard(page, batch_ui, source)
    # Queued or running first, then batch.js reloads the page once it has finished.
    page.locator("#download-result").wait_for(timeout=HANG_MS)
    assert page.locator("#job-status").inner_text() == "succeeded"
    assert page.locator("#job-rows").inner_text() == "299"
    screenshot(page, "batch-job-done")

    tab_to(page, "#download-result")
    assert has_visible_focus(page)
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    saved = tmp_path / "scored.csv"
    download.value.save_as(str(saved))
    api = page.request.get(f"{batch_ui}/v1/jobs/{job_id}/result")
    assert api.ok, api.text()
    assert saved.read_bytes() == api.body()
    scored = pd.read_csv(saved)
    assert len(scored) == 299
    assert "probability" in scored.columns
    assert blocked_urls(page) == []


def test_the_progress_shown_moves_until_the_page_offers_the_downloads(
    batch_ui: str, page: Any, tmp_path: Path
) -> None:
    patients = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])
    source = tmp_path / "many-patients.csv"
    pd.concat([patients] * LONG_JOB_COPIES).to_csv(source, index=False)
    submit_with_the_keyboard(page, batch_ui, source)
    shown: list[float] = []
    # What the bar shows, as batch.js updates it, until the finished page replaces it.
    while not page.locator("#download-result").count():
        try:
            value = page.evaluate(_PROGRESS)
        except Exception:  # the page is being reloaded: read the next one
            value = None
        if value is not None and (not shown or shown[-1] != value):
            shown.append(float(value))
        page.wait_for_timeout(100)
        assert len(shown) < 10_000, "the job never finished"
    assert any(0.0 < value < 1.0 for value in shown), shown
    assert shown == sorted(shown), shown
    assert page.locator("#job-status").inner_text() == "succeeded"
    assert page.locator("#job-rows").inner_text() == f"{len(patients) * LONG_JOB_COPIES}"
    assert page.locator("#job-progress").get_attribute("value") == "1.0"
    assert page.locator("#download-result").is_visible()
    screenshot(page, "batch-job-progress-done")
