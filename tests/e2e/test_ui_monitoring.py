"""The monitoring page in a real browser over a live server: charts drawn, keyboard only."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import pytest

from conftest import HEART_CSV
from e2e.ui_browser import blocked_urls, screenshot, tab_to

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MODEL = "heart-failure"
PAGE = f"/ui/models/{MODEL}/monitoring"
# The server writes its prediction log about once a second.
LOG_DEADLINE_SECONDS = 30
SUMMARY_TIMEOUT_MS = 60_000  # a few hundred predictions' summary, on a loaded 2-core machine


def serve_and_label(page: Any, base: str) -> int:
    frame = pd.read_csv(HEART_CSV)
    records = frame.drop(columns=["DEATH_EVENT"])
    records = records.assign(age=(records["age"] + 20).clip(upper=95))  # drifted
    answer = page.request.post(
        f"{base}/v1/models/{MODEL}/predict/batch", data={"records": records.to_dict("records")}
    )
    assert answer.ok, answer.text()
    ids = [item["prediction_id"] for item in answer.json()["predictions"]]
    deadline = time.monotonic() + LOG_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        versions = page.request.get(f"{base}/v1/models/{MODEL}/monitoring").json()["versions"]
        if versions and versions[0]["traffic"]["rows"] == len(ids):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the predictions never reached the log")
    labels = [
        {"prediction_id": prediction_id, "label": int(outcome)}
        for prediction_id, outcome in zip(ids, frame["DEATH_EVENT"], strict=True)
    ]
    posted = page.request.post(f"{base}/v1/models/{MODEL}/feedback", data={"labels": labels})
    assert posted.ok, posted.text()
    return len(ids)


def test_the_dashboard_draws_drift_scores_and_performance(live_ui, page):
    rows = serve_and_label(page, live_ui)
    page.goto(f"{live_ui}{PAGE}")
    # The summary is computed in the background: "computing" until it is, the page
    # reloading itself.
    page.locator("#heat-map").wait_for(timeout=SUMMARY_TIMEOUT_MS)
    assert page.locator("#traffic-rows").inner_text() == str(rows)
    features = page.locator("#drift-table tbody tr").count()
    assert page.locator("#heat-map rect.cell").count() == features * 24
    assert page.locator("#score-histogram polyline").count() == 2
    assert page.locator("#performance-chart circle").count() > 0
    assert page.locator("#heat-map").is_visible()
    screenshot(page, "monitoring-1d")

    # The window selector, keyboard only.
    tab_to(page, "#window-select")
    page.keyboard.type("last 7d")
    tab_to(page, ".monitor-window button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "window=7d" in page.url
    page.locator("#heat-map").wait_for(timeout=SUMMARY_TIMEOUT_MS)
    assert page.locator("#heat-map rect.cell").count() == features * 28
    page.locator("#drift summary").press("Enter")
    assert page.locator("#drift-table").is_visible()
    screenshot(page, "monitoring-7d-table")
    assert blocked_urls(page) == []
