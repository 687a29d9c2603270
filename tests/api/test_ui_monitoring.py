"""The monitoring page through the real app, over predictions really served, logged and labeled."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.ui_page import Page
from conftest import HEART_CSV
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.monitoring.alerts import RuleCheck
from tabops.monitoring.latest import LatestSummaries
from tabops.monitoring_rules import AlertRule
from tabops.security.keys import KeyStore
from tabops.server.app import create_app
from tabops.server.ui.monitoring import page_summary

MODEL = "heart-failure"
PAGE = f"/ui/models/{MODEL}/monitoring"
HANG_SECONDS = 30.0
"""Far beyond a summary of a few hundred predictions: a deadline that only stops a hang."""


@pytest.fixture
def heart() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV)


@pytest.fixture
def ui(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
        yield client


def monitoring_page(client: TestClient, **params: str) -> str:
    """The page once its summary is computed (it says "computing" until then)."""
    deadline = time.monotonic() + HANG_SECONDS
    while True:
        answer = client.get(PAGE, params=params)
        assert answer.status_code == 200, answer.text
        if 'id="computing"' not in answer.text:
            return answer.text
        assert time.monotonic() < deadline, "the summary was never computed"
        time.sleep(0.05)


def serve_and_label(client: TestClient, frame: pd.DataFrame) -> None:
    records = frame.drop(columns=["DEATH_EVENT"]).to_dict("records")
    answer = client.post(f"/v1/models/{MODEL}/predict/batch", json={"records": records})
    assert answer.status_code == 200, answer.text
    client.app.state.prediction_log.flush()  # type: ignore[attr-defined]
    ids = [item["prediction_id"] for item in answer.json()["predictions"]]
    labels = [
        {"prediction_id": prediction_id, "label": int(outcome)}
        for prediction_id, outcome in zip(ids, frame["DEATH_EVENT"], strict=True)
    ]
    posted = client.post(f"/v1/models/{MODEL}/feedback", json={"labels": labels})
    assert posted.status_code == 200, posted.text


def test_an_empty_log_is_a_page_saying_there_is_no_data(ui):
    page = monitoring_page(ui)
    assert 'id="no-data"' in page
    assert 'id="heat-map"' not in page
    assert 'id="window-select"' in page
    assert '<label for="window-select">' in page


def test_logged_predictions_and_labels_draw_every_chart(ui, heart):
    serve_and_label(ui, heart)
    page = monitoring_page(ui, window="1d")
    assert 'id="no-data"' not in page
    assert re.search(r'id="traffic-rows">([\d,]+)<', page).group(1) == f"{len(heart):,}"
    features = [c for c in heart.columns if c != "DEATH_EVENT"]
    # One cell per feature and hour of the day, each with its tooltip; the table says the same.
    cells = re.findall(r'<rect class="cell"[^>]*><title>([^<]+)</title>', page)
    assert len(cells) == len(features) * 24
    assert any(title.startswith("age, ") and "no data" not in title for title in cells)
    table = page[page.index('id="drift-table"') :]
    assert all(f'<th scope="row">{name}</th>' in table for name in features)
    # Reference and current score histograms as two step lines.
    histogram = page[page.index('id="score-histogram"') :]
    assert histogram.count("<polyline") == 2
    assert "reference (training)" in histogram
    # Realized and estimated performance points, the estimates named as such.
    chart = page[page.index('id="performance-chart"') :]
    assert "roc_auc (realized, from labels)" in chart
    assert "roc_auc (estimate)" in chart
    assert re.search(r'id="labels-rows">(\d+)<', page).group(1) == str(len(heart))


def test_the_window_selector_changes_the_buckets(ui, heart):
    serve_and_label(ui, heart)
    page = monitoring_page(ui, window="7d")
    features = [c for c in heart.columns if c != "DEATH_EVENT"]
    assert len(re.findall(r'<rect class="cell"', page)) == len(features) * 28
    assert '<option value="7d" selected>' in page


def test_the_page_shows_what_the_api_answers_for_the_same_window(ui, heart):
    serve_and_label(ui, heart)
    page = monitoring_page(ui, window="1d")
    since = re.search(r'id="summary-since" datetime="([^"]+)"', page).group(1)
    until = re.search(r'id="summary-until" datetime="([^"]+)"', page).group(1)
    answer = ui.get(
        f"/v1/models/{MODEL}/monitoring", params={"window": "1h", "since": since, "until": until}
    )
    assert answer.status_code == 200, answer.text
    (document,) = answer.json()["versions"]
    assert re.search(r'id="traffic-rows">([\d,]+)<', page).group(1) == (
        f"{document['traffic']['rows']:,}"
    )
    table = page[page.index('id="drift-table"') :]
    for name, feature in document["drift"]["features"].items():
        row = re.search(rf'<th scope="row">{name}</th>\s*<td>([^<]+)</td>', table).group(1)
        assert row == ("\N{EN DASH}" if feature["psi"] is None else f"{feature['psi']:.3f}")
    assert any(feature["psi"] is not None for feature in document["drift"]["features"].values())
    hours = re.findall(r'<rect class="cell"[^>]*><title>age, ([^<]+)</title>', page)
    assert len(hours) == len(document["series"])


def test_a_summary_not_computed_yet_is_an_honest_page_that_reloads(home):
    app = create_app(Settings(home=home, job_workers=0))
    is_released = threading.Event()

    def held(model: str, window: str, until: datetime) -> dict:
        is_released.wait(HANG_SECONDS)
        return page_summary(app.state.watch.monitor, model, window, until)

    app.state.ui_summaries = summaries = LatestSummaries(held)
    try:
        with TestClient(app) as client:
            waiting = client.get(PAGE)
            assert waiting.status_code == 200
            assert 'id="computing"' in waiting.text
            assert '<meta http-equiv="refresh" content="3">' in waiting.text
            assert 'id="no-data"' not in waiting.text
            is_released.set()
            page = monitoring_page(client)
            assert 'http-equiv="refresh"' not in page
            assert 'id="no-data"' in page
            assert re.search(r"as of \d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    finally:
        is_released.set()
        summaries.stop()


def test_the_alert_history_lists_events_newest_first_with_their_delivery(ui):
    alerts = ui.app.state.watch.alerts
    rule = AlertRule(metric="psi", feature="*", above=0.2)
    fired = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    resolved = fired + timedelta(hours=5)
    alerts.apply(MODEL, 1, [RuleCheck(rule, "1d", "age", 0.41, 300, 0, True)], now=fired)
    alerts.apply(MODEL, 1, [RuleCheck(rule, "1d", "age", 0.05, 300, 0, False)], now=resolved)
    first, second = alerts.due_deliveries(resolved, 10)
    assert alerts.claim(first, resolved, resolved + timedelta(minutes=1))
    alerts.finish_attempt(first.id, 1, "failed", now=resolved, error="HTTP 500 from the hook")
    assert alerts.claim(second, resolved, resolved + timedelta(minutes=1))
    alerts.finish_attempt(second.id, 1, "delivered", now=resolved)
    page = monitoring_page(ui)
    history = page[page.index('id="alert-history-table"') :]
    history = history[: history.index("</table>")]
    rows = re.findall(r"<tr><td><time[^>]*>([^<]+)</time>(.*?)</tr>", history, re.S)
    assert [when for when, _ in rows] == ["2026-11-02 14:30 UTC", "2026-11-02 09:30 UTC"]
    newest, oldest = (unescape(re.sub(r"<[^>]+>", " ", cells)).split() for _, cells in rows)
    assert newest[:5] == ["resolved", rule.key, "age", "1", "0.050"]
    assert oldest[:5] == ["firing", rule.key, "age", "1", "0.410"]
    assert "HTTP 500 from the hook" in history
    assert {"delivered", "failed"} == {newest[5], oldest[5]}


def test_an_empty_alert_history_says_so(ui):
    page = monitoring_page(ui)
    assert 'id="alert-history-table"' not in page
    assert "No alert has fired yet." in page


@pytest.mark.parametrize(
    ("query", "field"),
    [({"window": "2y"}, "window"), ({"version": "zero"}, "version"), ({"version": "0"}, "version")],
)
def test_a_bad_query_is_an_html_page_naming_the_field(ui, query, field):
    answer = ui.get(PAGE, params=query)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    assert '<nav class="nav" aria-label="Main">' in answer.text
    problems = answer.text[answer.text.index('class="problems"') :]
    assert re.search(rf"<code>[a-z.]*{field}</code>: \S", problems)


def test_an_unknown_model_is_refused(ui):
    assert ui.get("/ui/models/nothing/monitoring").status_code == 404


@pytest.fixture
def keyed(home: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    store = KeyStore(create_database_engine(Settings(home=home).metadata_url))
    tokens = {
        "read": store.create("read-key", "read")[1],
        "other": store.create("other-key", "read", models=["another-model"])[1],
    }
    store.engine.dispose()
    app = create_app(Settings(home=home, job_workers=0))
    app.state.policy.refresh_seconds = 0
    with TestClient(app) as client:
        yield client, tokens


def log_in(client: TestClient, token: str) -> None:
    form = client.get("/ui/login")
    answer = client.post(
        "/ui/login",
        data={"key": token, "csrf": Page(form.text).forms[0]["csrf"], "next": PAGE},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def test_a_read_key_may_see_the_page_and_no_key_is_sent_to_the_login(keyed):
    client, tokens = keyed
    refused = client.get(PAGE, follow_redirects=False)
    assert refused.status_code == 303
    assert refused.headers["location"].startswith("/ui/login")
    log_in(client, tokens["read"])
    assert client.get(PAGE).status_code == 200


def test_a_key_for_other_models_is_refused(keyed):
    client, tokens = keyed
    log_in(client, tokens["other"])
    assert client.get(PAGE).status_code == 403
