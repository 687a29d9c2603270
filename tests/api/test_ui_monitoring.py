"""The monitoring page through the real app, over predictions really served, logged and labeled."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import HEART_CSV
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.security.keys import KeyStore
from tabops.server.app import create_app

MODEL = "heart-failure"
PAGE = f"/ui/models/{MODEL}/monitoring"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def heart() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV)


@pytest.fixture
def ui(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
        yield client


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
    answer = ui.get(PAGE)
    assert answer.status_code == 200, answer.text
    assert 'id="no-data"' in answer.text
    assert 'id="heat-map"' not in answer.text
    assert 'id="window-select"' in answer.text
    assert '<label for="window-select">' in answer.text


def test_logged_predictions_and_labels_draw_every_chart(ui, heart):
    serve_and_label(ui, heart)
    answer = ui.get(PAGE, params={"window": "1d"})
    assert answer.status_code == 200, answer.text
    page = answer.text
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
    page = ui.get(PAGE, params={"window": "7d"}).text
    features = [c for c in heart.columns if c != "DEATH_EVENT"]
    assert len(re.findall(r'<rect class="cell"', page)) == len(features) * 28
    assert '<option value="7d" selected>' in page
    assert ui.get(PAGE, params={"window": "2y"}).status_code == 422


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
    found = _CSRF.search(form.text)
    assert found is not None
    answer = client.post(
        "/ui/login",
        data={"key": token, "csrf": found.group(1), "next": PAGE},
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
