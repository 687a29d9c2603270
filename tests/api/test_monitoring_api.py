"""GET /v1/models/{name}/monitoring over predictions really served, logged and labeled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import HEART_CSV
from tabops.config import Settings
from tabops.server.app import create_app

MODEL = "heart-failure"
BATCH = f"/v1/models/{MODEL}/predict/batch"
MONITORING = f"/v1/models/{MODEL}/monitoring"


@pytest.fixture
def heart() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV)


@pytest.fixture
def served(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
        yield client


def serve(client: TestClient, frame: pd.DataFrame) -> list[str]:
    records = frame.drop(columns=["DEATH_EVENT"]).to_dict("records")
    answer = client.post(BATCH, json={"records": records})
    assert answer.status_code == 200, answer.text
    client.app.state.prediction_log.flush()  # type: ignore[attr-defined]
    return [item["prediction_id"] for item in answer.json()["predictions"]]


def older(frame: pd.DataFrame) -> pd.DataFrame:
    """The same patients twenty years older (within the schema's range): a shifted age."""
    return frame.assign(age=(frame["age"] + 20).clip(upper=95))


def test_drift_is_measured_on_the_window_and_only_the_shifted_feature_alerts(served, heart):
    serve(served, heart)
    serve(served, older(heart))
    latest = served.get(MONITORING, params={"window": str(len(heart))})
    assert latest.status_code == 200, latest.text
    [version] = latest.json()["versions"]
    drift = version["drift"]
    assert version["traffic"]["rows"] == len(heart)
    assert drift["features"]["age"]["psi"] > 0.2
    assert drift["features"]["age"]["status"] == "alert"
    assert drift["drifted"] == ["age"]
    whole_day = served.get(MONITORING, params={"window": "1d"}).json()["versions"][0]
    assert whole_day["traffic"]["rows"] == 2 * len(heart)
    assert whole_day["estimates"]["estimate"] is True
    assert 0 <= whole_day["estimates"]["estimated_precision"] <= 1


def test_performance_comes_from_the_labels_received(served, heart):
    ids = serve(served, heart)
    labels = [
        {"prediction_id": prediction_id, "label": int(outcome)}
        for prediction_id, outcome in zip(ids, heart["DEATH_EVENT"], strict=True)
    ]
    posted = served.post(f"/v1/models/{MODEL}/feedback", json={"labels": labels})
    assert posted.status_code == 200, posted.text
    [version] = served.get(MONITORING).json()["versions"]
    performance = version["performance"]
    assert performance["rows"] == len(heart)
    assert performance["positives"] == int(heart["DEATH_EVENT"].sum())
    assert 0.5 < performance["roc_auc"] <= 1
    assert "roc_auc" in performance["training"]


def test_a_series_has_one_point_per_window(served, heart):
    serve(served, heart)
    answer = served.get(MONITORING, params={"window": "1h", "since": "1d"})
    assert answer.status_code == 200, answer.text
    [version] = answer.json()["versions"]
    series = version["series"]
    assert len(series) == 24
    assert sum(point["rows"] for point in series) == len(heart)
    assert series[-1]["rows"] == len(heart)


def test_nothing_logged_answers_no_versions(served):
    answer = served.get(MONITORING, params={"window": "1h"})
    assert answer.status_code == 200
    assert answer.json()["versions"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"window": "soon"}, "window"),
        ({"window": "0"}, "window"),
        ({"since": "yesterday"}, "since"),
        ({"since": "1h", "until": "2h"}, "since"),
        ({"window": "1m", "since": "400d"}, "since"),
    ],
)
def test_bad_windows_are_named(served, params, field):
    answer = served.get(MONITORING, params=params)
    assert answer.status_code == 422, answer.text
    assert field in {detail["field"] for detail in answer.json()["error"]["details"]}


def test_an_unknown_model_is_not_found(served):
    assert served.get("/v1/models/nope/monitoring").status_code == 404
    assert served.post("/v1/models/nope/monitoring/check").status_code == 404


def test_a_check_without_rules_changes_nothing(served, heart):
    serve(served, heart)
    answer = served.post(f"{MONITORING}/check")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"model": MODEL, "events": []}


def test_a_handful_of_predictions_gives_statistics_but_no_drift_verdict(served, heart):
    serve(served, older(heart).head(10))
    [version] = served.get(MONITORING, params={"window": "1h"}).json()["versions"]
    assert version["drift"]["features"]["age"]["psi"] > 0.2
    assert version["drift"]["features"]["age"]["status"] == "few_rows"
    assert version["drift"]["drifted"] == []
