"""The batch page in a real browser over a live server: upload with the keyboard, follow the
job as it runs, download the scored file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import HEART_CSV
from e2e.test_ui_predict import has_visible_focus, tab_to
from e2e.ui_browser import blocked_urls, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MODEL = "heart-failure"
PAGE = f"/ui/models/{MODEL}/batch"
HANG_MS = 60_000  # a 299-row job on a loaded 2-core machine finishes well within this


def test_upload_a_file_with_the_keyboard_follow_the_job_and_download_it(
    live_ui: str, page: Any, tmp_path: Path
) -> None:
    source = tmp_path / "patients.csv"
    pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"]).to_csv(source, index=False)
    page.goto(f"{live_ui}{PAGE}")
    tab_to(page, "#batch-file")
    assert has_visible_focus(page)
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(source))
    screenshot(page, "batch-upload")
    tab_to(page, "#batch-submit")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/ui/jobs/" in page.url
    job_id = page.url.rsplit("/", 1)[-1]
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
    api = page.request.get(f"{live_ui}/v1/jobs/{job_id}/result")
    assert api.ok, api.text()
    assert saved.read_bytes() == api.body()
    scored = pd.read_csv(saved)
    assert len(scored) == 299
    assert "probability" in scored.columns
    assert blocked_urls(page) == []
