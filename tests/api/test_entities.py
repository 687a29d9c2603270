"""Features by entity: build, materialise, GET /v1/features/..., predict by entity id.

A small loans-like event table (clients with repeated, dated loans) is trained once per
test process with window and row features (``loans_data.py``); each test gets a private
copy of that home.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import make_registry
from loans_data import MODEL, VIEW
from tabops.config import Settings
from tabops.errors import NotAuthorizedError
from tabops.feature_store.offline import build_feature_table, load_feature_table, materialize
from tabops.feature_store.sql import open_feature_store
from tabops.features import latest_rows
from tabops.model.predictor import Predictor
from tabops.project import load_project
from tabops.server.app import create_app
from tabops.serving.hooks import Hooks


@pytest.fixture
def client(loans_home) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=loans_home[0], job_workers=0))) as test_client:
        yield test_client


def offline_latest(home: Path, folder: Path) -> pd.DataFrame:
    project, _ = load_project(folder)
    return latest_rows(load_feature_table(project, home), "client", "date").set_index("client")


def same(left, right) -> bool:
    if isinstance(left, float) and math.isnan(left):
        return right is None or (isinstance(right, float) and math.isnan(right))
    return left == right


def test_served_features_equal_the_offline_features_of_each_latest_row(client, loans_home):
    latest = offline_latest(*loans_home)
    names = ["amount", "previous_loans", "previous_amount", "largest_30d", "age", "car"]
    for client_id in latest.index[::7]:
        response = client.get(f"/v1/features/{VIEW}/{client_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["entity_id"] == str(client_id)
        assert body["event_time"].startswith(latest.loc[client_id, "date"])
        for name in names:
            assert same(latest.loc[client_id, name].item(), body["features"][name]), name


def test_an_unknown_entity_or_view_is_a_404_naming_it(client):
    response = client.get(f"/v1/features/{VIEW}/999999")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "entity_not_found"
    assert "'999999'" in error["message"]
    response = client.get("/v1/features/nowhere/1000")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "view_not_found"
    response = client.get(f"/v1/models/{MODEL}/entities/999999/prediction")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "entity_not_found"


def test_the_store_lists_its_views(client):
    views = client.get("/v1/features").json()
    assert [view["view"] for view in views] == [VIEW]
    assert views[0]["entity"] == "client"
    assert {"previous_loans", "car", "amount"} <= set(views[0]["features"])


def test_predicting_by_entity_scores_the_stored_features(client, loans_home):
    home, folder = loans_home
    latest = offline_latest(home, folder)
    predictor = Predictor.load(make_registry(home), MODEL)
    client_id = int(latest.index[3])
    response = client.get(f"/v1/models/{MODEL}/entities/{client_id}/prediction")
    assert response.status_code == 200, response.text
    body = response.json()
    record = {name: latest.loc[client_id, name].item() for name in predictor.spec.feature_names}
    record = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
    expected = predictor.predict_records([record])[0]
    assert body["probability"] == expected.probability
    assert body["class_name"] == expected.class_name
    assert (body["model"], body["version"], body["view"]) == (MODEL, 1, VIEW)
    assert body["overridden"] == []
    assert set(body["features"]) == set(predictor.spec.feature_names)


def test_overrides_replace_stored_values_for_one_request(client, loans_home):
    home, _folder = loans_home
    predictor = Predictor.load(make_registry(home), MODEL)
    url = f"/v1/models/{MODEL}/entities/1003/prediction"
    stored = client.get(url).json()
    body = client.post(url, json={"overrides": {"amount": 399.0, "car": 0}}).json()
    assert body["overridden"] == ["amount", "car"]
    assert body["features"] == {**stored["features"], "amount": 399.0, "car": 0}
    expected = predictor.predict_records([body["features"]])[0].probability
    assert body["probability"] == expected
    assert client.get(url).json()["probability"] == stored["probability"]  # nothing was kept


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"overrides": {"amount": "lots"}}, "overrides.amount"),
        ({"overrides": {"salary": 1}}, "overrides.salary"),
        ({"overrides": {"amount": 1}, "extra": True}, "extra"),
    ],
)
def test_a_bad_override_is_a_422_naming_it(client, body, field):
    response = client.post(f"/v1/models/{MODEL}/entities/1003/prediction", json=body)
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]


def test_a_model_without_an_entity_cannot_be_served_by_entity(home):
    with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
        response = client.get("/v1/models/heart-failure/entities/1/prediction")
    assert response.status_code == 409
    assert "without an entity column" in response.json()["error"]["message"]


def test_a_view_lacking_a_feature_the_model_needs_is_refused(loans_home):
    home, _folder = loans_home
    store = open_feature_store(Settings(home=home))
    partial = pd.DataFrame({"client": [1], "amount": [120.0], "age": [30.0]})
    store.write(VIEW, partial, "client")
    store.engine.dispose()
    with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
        response = client.get(f"/v1/models/{MODEL}/entities/1/prediction")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "features_unavailable"
    assert "previous_loans" in error["message"]


def test_materialising_again_writes_only_entities_that_changed(loans_home, tmp_path):
    home, folder = loans_home
    project, _ = load_project(folder)
    store = open_feature_store(Settings(home=home))
    again = materialize(project, folder, home, store)
    assert (again.inserted, again.updated) == (0, 0)
    assert again.unchanged == again.entities
    loans = pd.read_csv(folder / "loans.csv")
    newer = loans[loans["client"] == 1003].tail(1).assign(loan_id=10**6, date="2023-01-01")
    newcomer = newer.assign(loan_id=10**6 + 1, client=5000)
    changed = tmp_path / "loans.csv"
    pd.concat([loans, newer, newcomer]).to_csv(changed, index=False)
    build_feature_table(project, folder, home, changed)
    report = materialize(project, folder, home, store)
    store.engine.dispose()
    assert (report.inserted, report.updated) == (1, 1)
    assert report.unchanged == again.entities - 1


def test_the_fast_path_answers_as_the_routes_do(client):
    url = f"/v1/models/{MODEL}/entities/1003/prediction"
    first = client.get(url).json()  # loads the version through the routes
    second = client.get(url).json()  # answered ahead of the routes
    for key in ("probability", "label", "class_name", "features", "event_time", "view"):
        assert first[key] == second[key]
    missing = client.get(f"/v1/models/{MODEL}/entities/424242/prediction")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "entity_not_found"
    assert "'424242'" in missing.json()["error"]["message"]


def test_predictions_by_entity_reach_the_sink_once_and_obey_authorize(loans_home):
    served = []

    class Sink:
        def record(self, group):
            served.append(group)

    refused = []

    def authorize(context, action, model):
        if context.client is not None and refused:
            raise NotAuthorizedError("not this caller")

    hooks = Hooks(authorize=authorize, sink=Sink())
    with TestClient(create_app(Settings(home=loans_home[0], job_workers=0), hooks=hooks)) as client:
        path = f"/v1/models/{MODEL}/entities/1003/prediction"
        fast = client.get(path)
        routed = client.post(path, json={"overrides": {}})
        assert fast.status_code == routed.status_code == 200, fast.text
        ids = [group.decisions[0].prediction_id for group in served]
        assert ids == [fast.json()["prediction_id"], routed.json()["prediction_id"]]
        assert {group.context.route for group in served} == {"entity"}
        refused.append(True)
        assert client.get(path).status_code == 403
        assert client.post(path, json={"overrides": {}}).status_code == 403
        assert len(served) == 2
