"""POST /predict, /v1/models/{name}/predict and its batch form, through the real app."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from conftest import SEED_REQUEST
from tabops.config import Settings
from tabops.server.app import create_app

MODEL = "heart-failure"
PREDICT = f"/v1/models/{MODEL}/predict"
BATCH = f"/v1/models/{MODEL}/predict/batch"
JSON = {"content-type": "application/json"}
RECORD: dict = json.loads(SEED_REQUEST)["features"]
PREDICTION_KEYS = {
    "prediction_id",
    "model",
    "version",
    "label",
    "class_name",
    "probability",
    "threshold",
    "timestamp",
}
CLASS_NAMES = {"survived", "dead"}


def record_text(**raw: str) -> str:
    """The seed record as JSON text, with some values replaced by raw JSON tokens (e.g. NaN)."""
    values = {name: json.dumps(value) for name, value in RECORD.items()} | raw
    return "{" + ", ".join(f'"{name}": {token}' for name, token in values.items()) + "}"


def without(*names: str) -> dict:
    return {key: value for key, value in RECORD.items() if key not in names}


def assert_prediction(body: dict) -> None:
    assert set(body) == PREDICTION_KEYS
    assert body["model"] == MODEL
    assert body["version"] == 1
    assert 0.0 <= body["probability"] <= 1.0
    assert body["class_name"] in CLASS_NAMES
    assert_label_consistent(body, body["threshold"])


def assert_label_consistent(item: dict, threshold: float) -> None:
    positive = item["probability"] >= threshold
    assert item["label"] == (1 if positive else 0)
    assert item["class_name"] == ("dead" if positive else "survived")


def error_fields(response, status: int) -> list[str]:
    """Assert the one error shape with ``status``; return the fields its details name."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], list)
    for detail in error["details"]:
        assert set(detail) == {"field", "problem"}
        assert detail["problem"]
    return [detail["field"] for detail in error["details"]]


def examples(client: TestClient, count: int) -> list[dict]:
    return [
        client.get(f"/v1/models/{MODEL}/example", params={"index": index}).json()["record"]
        for index in range(count)
    ]


# --- successful predictions -------------------------------------------------------------


def test_predict_scores_seed_request_sent_verbatim_with_default_model(client):
    response = client.post("/predict", content=SEED_REQUEST, headers=JSON)

    assert response.status_code == 200, response.text
    assert_prediction(response.json())


def test_predict_accepts_trailing_slash_path(client):
    response = client.post("/predict/", content=SEED_REQUEST, headers=JSON)

    assert response.status_code == 200, response.text
    assert_prediction(response.json())


def test_predict_by_name_scores_flat_record(client):
    response = client.post(PREDICT, json=RECORD)

    assert response.status_code == 200, response.text
    assert_prediction(response.json())


def test_predict_by_name_scores_features_wrapper_like_flat_record(client):
    flat = client.post(PREDICT, json=RECORD)
    wrapped = client.post(PREDICT, json={"features": RECORD})

    assert wrapped.status_code == 200, wrapped.text
    assert_prediction(wrapped.json())
    assert wrapped.json()["probability"] == pytest.approx(flat.json()["probability"])


@pytest.mark.parametrize("version", ["1", "production"])
def test_predict_by_name_uses_version_given_by_number_or_alias(client, version):
    response = client.post(PREDICT, params={"version": version}, json=RECORD)

    assert response.status_code == 200, response.text
    assert_prediction(response.json())
    assert response.json()["version"] == 1


def test_predict_threshold_is_the_registered_versions_threshold(client):
    manifest = client.get(f"/v1/models/{MODEL}/versions/1").json()["manifest"]

    body = client.post(PREDICT, json=RECORD).json()

    assert body["threshold"] == pytest.approx(manifest["threshold"])


def test_predict_gives_each_prediction_a_new_id(client):
    first = client.post(PREDICT, json=RECORD).json()
    second = client.post(PREDICT, json=RECORD).json()

    assert first["prediction_id"] != second["prediction_id"]


def test_predict_accepts_whole_float_for_integer_and_true_for_boolean_column(client):
    response = client.post(PREDICT, json=RECORD | {"time": 3.0, "anaemia": True})

    assert response.status_code == 200, response.text
    assert response.json()["probability"] == pytest.approx(
        client.post(PREDICT, json=RECORD | {"anaemia": 1}).json()["probability"]
    )


def test_predict_label_follows_probability_and_threshold_on_real_records(client):
    for record in examples(client, 10):
        response = client.post(PREDICT, json=record)
        assert response.status_code == 200, response.text
        assert_prediction(response.json())


def test_predict_batch_answers_each_record_in_order(client):
    records = examples(client, 5)
    singles = [client.post(PREDICT, json=record).json()["probability"] for record in records]

    response = client.post(BATCH, json={"records": records})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == MODEL
    assert body["version"] == 1
    assert len(body["predictions"]) == len(records)
    assert [item["probability"] for item in body["predictions"]] == pytest.approx(singles)
    for item in body["predictions"]:
        assert set(item) == {"prediction_id", "label", "class_name", "probability"}
        assert 0.0 <= item["probability"] <= 1.0
        assert_label_consistent(item, body["threshold"])
    assert len({item["prediction_id"] for item in body["predictions"]}) == len(records)


def test_predict_batch_accepts_exactly_the_row_limit(home):
    with TestClient(create_app(Settings(home=home, max_batch_rows=2))) as client:
        response = client.post(BATCH, json={"records": [RECORD, RECORD]})

    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 2


def test_predict_batch_returns_413_when_records_exceed_the_row_limit(home):
    with TestClient(create_app(Settings(home=home, max_batch_rows=2))) as client:
        response = client.post(BATCH, json={"records": [RECORD, RECORD, RECORD]})

    assert error_fields(response, 413) == ["records"]


# --- registry changes seen by a running app -------------------------------------------------


def test_predict_serves_alias_set_in_registry_after_app_started(client, registry):
    before = client.post(PREDICT, params={"version": "staging"}, json=RECORD)
    assert error_fields(before, 404) == ["version"]

    registry.set_alias(MODEL, "staging", 1)
    after = client.post(PREDICT, params={"version": "staging"}, json=RECORD)

    assert after.status_code == 200, after.text
    assert_prediction(after.json())


# --- bad records ------------------------------------------------------------------------------

BAD_RECORDS = [
    pytest.param(json.dumps(without("age")), 422, ["age"], id="missing-age"),
    pytest.param(json.dumps({"features": without("age")}), 422, ["age"], id="missing-age-wrapped"),
    pytest.param(json.dumps(RECORD | {"age": "20"}), 422, ["age"], id="string-for-number"),
    pytest.param(json.dumps(RECORD | {"time": "3"}), 422, ["time"], id="string-for-integer"),
    pytest.param(json.dumps(RECORD | {"age": None}), 422, ["age"], id="null-for-number"),
    pytest.param(json.dumps(RECORD | {"age": True}), 422, ["age"], id="boolean-for-number"),
    pytest.param(json.dumps(RECORD | {"age": {"v": 1}}), 422, ["age"], id="object-for-number"),
    pytest.param(json.dumps(RECORD | {"cholesterol": 180}), 422, ["cholesterol"], id="unknown"),
    pytest.param(record_text(age="NaN"), 422, ["age"], id="nan"),
    pytest.param(record_text(age="Infinity"), 422, ["age"], id="infinity"),
    pytest.param(record_text(platelets="-Infinity"), 422, ["platelets"], id="minus-infinity"),
    pytest.param(record_text(time="NaN"), 422, ["time"], id="nan-in-integer-column"),
    pytest.param(record_text(age="1e400"), 422, ["age"], id="overflowing-number"),
    pytest.param(json.dumps(RECORD | {"anaemia": 2}), 422, ["anaemia"], id="boolean-given-2"),
    pytest.param(json.dumps(RECORD | {"sex": -1}), 422, ["sex"], id="boolean-given-minus-1"),
    pytest.param(json.dumps(RECORD | {"sex": "yes"}), 422, ["sex"], id="boolean-given-text"),
    pytest.param(json.dumps(RECORD | {"time": 3.5}), 422, ["time"], id="fraction-for-integer"),
    pytest.param("", 400, ["body"], id="empty-body"),
    pytest.param("   \n", 400, ["body"], id="blank-body"),
    pytest.param('{"age": 20,', 400, ["body"], id="malformed-json"),
    pytest.param("\udcff", 400, ["body"], id="not-utf8"),
    pytest.param(json.dumps([RECORD]), 422, ["body"], id="json-array"),
    pytest.param("null", 422, ["body"], id="json-null"),
    pytest.param('"text"', 422, ["body"], id="json-string"),
]


@pytest.mark.parametrize("path", [PREDICT, "/predict"])
@pytest.mark.parametrize(("body", "status", "fields"), BAD_RECORDS)
def test_predict_rejects_bad_record_with_one_error_shape_naming_the_field(
    client, path, body, status, fields
):
    content = body.encode("utf-8", "surrogateescape")

    response = client.post(path, content=content, headers=JSON)

    assert error_fields(response, status) == fields


def test_predict_returns_422_naming_every_missing_field_when_record_is_empty(client):
    response = client.post(PREDICT, json={})

    assert sorted(error_fields(response, 422)) == sorted(RECORD)


def test_predict_returns_422_naming_field_when_age_missing(client):
    response = client.post("/predict", json=without("age"))

    fields = error_fields(response, 422)
    assert fields == ["age"]
    assert response.json()["error"]["details"][0]["problem"] == "field required"


# --- bad batches ----------------------------------------------------------------------------

BAD_BATCHES = [
    pytest.param(
        json.dumps({"records": [RECORD, without("age")]}), 422, ["records[1].age"], id="bad-record"
    ),
    pytest.param(
        json.dumps({"records": [RECORD, RECORD | {"smoking": 2}, without("time")]}),
        422,
        ["records[1].smoking", "records[2].time"],
        id="two-bad-records",
    ),
    pytest.param(
        '{"records": [' + json.dumps(RECORD) + ", " + record_text(age="NaN") + "]}",
        422,
        ["records[1].age"],
        id="nan-in-record",
    ),
    pytest.param(json.dumps({"records": [RECORD, 5]}), 422, ["records[1]"], id="not-an-object"),
    pytest.param(json.dumps({}), 422, ["records"], id="records-missing"),
    pytest.param(json.dumps({"records": RECORD}), 422, ["records"], id="records-not-a-list"),
    pytest.param(json.dumps({"records": []}), 422, ["records"], id="records-empty"),
    pytest.param(
        json.dumps({"records": [RECORD], "limit": 3}), 422, ["limit"], id="unknown-top-level-field"
    ),
    pytest.param("", 400, ["body"], id="empty-body"),
    pytest.param('{"records": [', 400, ["body"], id="malformed-json"),
    pytest.param(json.dumps([RECORD]), 422, ["body"], id="json-array"),
]


@pytest.mark.parametrize(("body", "status", "fields"), BAD_BATCHES)
def test_predict_batch_rejects_bad_batch_with_one_error_shape_naming_the_field(
    client, body, status, fields
):
    response = client.post(BATCH, content=body, headers=JSON)

    assert error_fields(response, status) == fields


# --- unknown models, versions, routes and methods ------------------------------------------

NOT_FOUND = [
    pytest.param("/v1/models/no-such-model/predict", {}, ["name"], id="unknown-model"),
    pytest.param("/v1/models/no-such-model/predict/batch", {}, ["name"], id="unknown-model-batch"),
    pytest.param(PREDICT, {"version": "9"}, ["version"], id="unknown-version"),
    pytest.param(PREDICT, {"version": "0"}, ["version"], id="version-zero"),
    pytest.param(PREDICT, {"version": "canary"}, ["version"], id="unknown-alias"),
    pytest.param(PREDICT, {"version": "1.5"}, ["version"], id="non-integer-version"),
    pytest.param(PREDICT, {"version": "\u00b2"}, ["version"], id="unicode-digit-version"),
    pytest.param(BATCH, {"version": "9"}, ["version"], id="unknown-version-batch"),
    pytest.param("/v1/predict", {}, [], id="unknown-route"),
    # (/v2 is the Open Inference Protocol's, whose errors are written in its own shape.)
    pytest.param("/v3/models/heart-failure/predict", {}, [], id="unknown-api-version"),
]


@pytest.mark.parametrize(("path", "params", "fields"), NOT_FOUND)
def test_predict_returns_404_in_error_shape_for_unknown_target(client, path, params, fields):
    body = {"records": [RECORD]} if path.endswith("/batch") else RECORD

    response = client.post(path, params=params, json=body)

    assert error_fields(response, 404) == fields


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/predict", id="get-predict"),
        pytest.param("PUT", "/predict", id="put-predict"),
        pytest.param("GET", PREDICT, id="get-model-predict"),
        pytest.param("DELETE", BATCH, id="delete-batch"),
        pytest.param("POST", "/v1/models", id="post-models"),
        pytest.param("POST", "/healthz", id="post-healthz"),
    ],
)
def test_api_returns_405_in_error_shape_for_wrong_method(client, method, path):
    response = client.request(method, path)

    assert error_fields(response, 405) == []


def test_api_names_allowed_methods_in_allow_header_when_method_is_wrong(client):
    response = client.get("/predict")

    assert response.status_code == 405
    assert "POST" in response.headers.get("allow", "")


def test_predict_returns_404_when_version_parameter_is_empty(client):
    record = client.get("/v1/models/heart-failure/example").json()["record"]

    response = client.post("/v1/models/heart-failure/predict?version=", json=record)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "version_not_found"
