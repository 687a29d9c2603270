"""GET /v1/models..., the example record and the OpenAPI document, through the real app."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from conftest import HEART_FEATURES
from tabops.config import Settings
from tabops.server.app import create_app

MODEL = "heart-failure"
FEATURES = HEART_FEATURES
BOOLEANS = ["anaemia", "diabetes", "high_blood_pressure", "sex", "smoking"]


def error_fields(response, status: int) -> list[str]:
    """Assert the one error shape with ``status``; return the fields its details name."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"]
    assert body["error"]["message"]
    for detail in body["error"]["details"]:
        assert set(detail) == {"field", "problem"}
    return [detail["field"] for detail in body["error"]["details"]]


# --- listing and describing models ---------------------------------------------------------


def test_models_lists_the_registered_model_with_versions_and_aliases(client):
    response = client.get("/v1/models")

    assert response.status_code == 200, response.text
    [model] = response.json()
    assert model["name"] == MODEL
    assert model["versions"] == [1]
    assert model["aliases"] == {"production": 1}
    assert model["production"]["version"] == 1
    assert 0.0 < model["production"]["threshold"] < 1.0
    assert "roc_auc" in model["production"]["metrics"]


def test_models_lists_nothing_when_registry_is_empty(tmp_path):
    with TestClient(create_app(Settings(home=tmp_path))) as client:
        response = client.get("/v1/models")

    assert response.status_code == 200, response.text
    assert response.json() == []


def test_model_describes_versions_aliases_and_production_headline(client):
    response = client.get(f"/v1/models/{MODEL}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == MODEL
    assert body["versions"] == [1]
    assert body["aliases"] == {"production": 1}
    assert body["production"]["version"] == 1
    assert body["production"]["candidate"]


@pytest.mark.parametrize("version", ["1", "production"])
def test_model_version_returns_manifest_by_number_or_alias(client, version):
    response = client.get(f"/v1/models/{MODEL}/versions/{version}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == MODEL
    assert body["version"] == 1
    assert body["aliases"] == ["production"]
    manifest = body["manifest"]
    assert manifest["target"] == "DEATH_EVENT"
    assert {entry["name"] for entry in manifest["classes"].values()} == {"survived", "dead"}
    assert 0.0 < manifest["threshold"] < 1.0


def test_model_version_lists_alias_set_after_app_started(client, registry):
    registry.set_alias(MODEL, "staging", 1)

    response = client.get(f"/v1/models/{MODEL}/versions/staging")

    assert response.status_code == 200, response.text
    assert response.json()["aliases"] == ["production", "staging"]


def test_model_versions_list_metrics_aliases_and_tags(client, registry):
    from tabops.registry.tags import VersionTags

    VersionTags(registry.store).add(MODEL, 1, ["1.0"])

    response = client.get(f"/v1/models/{MODEL}/versions")

    assert response.status_code == 200, response.text
    [entry] = response.json()
    assert entry["version"] == 1
    assert entry["aliases"] == ["production"]
    assert entry["tags"] == ["1.0"]
    assert 0.0 <= entry["metrics"]["roc_auc"] <= 1.0
    assert client.get("/v1/models/no-such-model/versions").status_code == 404


# --- the example record ------------------------------------------------------------------------


def test_model_example_is_a_real_record_of_the_training_data(client, heart_frame):
    response = client.get(f"/v1/models/{MODEL}/example")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == MODEL
    assert body["version"] == 1
    record = body["record"]
    assert list(record) == FEATURES
    assert any(
        all(math.isclose(row[name], record[name]) for name in FEATURES)
        for row in heart_frame.to_dict("records")
    )


def test_model_example_differs_by_index(client):
    first = client.get(f"/v1/models/{MODEL}/example", params={"index": 0}).json()["record"]
    second = client.get(f"/v1/models/{MODEL}/example", params={"index": 1}).json()["record"]

    assert first != second


@pytest.mark.parametrize("path", ["/predict", f"/v1/models/{MODEL}/predict"])
def test_model_example_posted_back_to_predict_is_scored(client, path):
    record = client.get(f"/v1/models/{MODEL}/example").json()["record"]

    response = client.post(path, json=record)

    assert response.status_code == 200, response.text
    assert response.json()["class_name"] in {"survived", "dead"}
    assert 0.0 <= response.json()["probability"] <= 1.0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"index": "999999"}, "index", id="index-past-the-end"),
        pytest.param({"index": "-1"}, "query.index", id="negative-index"),
        pytest.param({"index": "first"}, "query.index", id="text-index"),
    ],
)
def test_model_example_returns_422_naming_index_when_index_is_invalid(client, params, field):
    response = client.get(f"/v1/models/{MODEL}/example", params=params)

    assert error_fields(response, 422) == [field]


# Draws asked of random examples: with 50 reference rows, all of them equal by chance has
# probability 50**-19 (the test cannot fail by bad luck in practice).
RANDOM_DRAWS = 20


def test_random_model_example_draws_different_real_records(client, heart_frame):
    records = [
        client.get(f"/v1/models/{MODEL}/example", params={"random": "true"}).json()
        for _ in range(RANDOM_DRAWS)
    ]

    assert {body["version"] for body in records} == {1}
    distinct = {tuple(body["record"].items()) for body in records}
    assert len(distinct) > 1
    rows = heart_frame.to_dict("records")
    for body in records:
        assert list(body["record"]) == FEATURES
        assert any(all(math.isclose(row[n], body["record"][n]) for n in FEATURES) for row in rows)


def test_random_model_examples_are_each_scored_by_predict(client):
    for _ in range(RANDOM_DRAWS):
        record = client.get(f"/v1/models/{MODEL}/example?random=true").json()["record"]

        response = client.post(f"/v1/models/{MODEL}/predict", json=record)

        assert response.status_code == 200, response.text


def test_model_example_without_random_stays_the_first_reference_row(client):
    default = client.get(f"/v1/models/{MODEL}/example").json()

    assert client.get(f"/v1/models/{MODEL}/example?random=false").json() == default
    assert client.get(f"/v1/models/{MODEL}/example?index=0").json() == default
    assert client.get(f"/v1/models/{MODEL}/example").json() == default


def test_openapi_documents_the_random_example_parameter(client):
    operation = client.get("/openapi.json").json()["paths"]["/v1/models/{name}/example"]["get"]

    parameter = next(p for p in operation["parameters"] if p["name"] == "random")
    assert parameter["schema"]["type"] == "boolean"
    assert parameter["schema"]["default"] is False
    assert "random" in parameter["description"]
    assert "random=true" in operation["description"]


# --- not found -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        pytest.param("/v1/models/no-such-model", ["name"], id="unknown-model"),
        pytest.param("/v1/models/no-such-model/versions/1", ["name"], id="unknown-model-version"),
        pytest.param("/v1/models/no-such-model/example", ["name"], id="unknown-model-example"),
        pytest.param(f"/v1/models/{MODEL}/versions/9", ["version"], id="unknown-version"),
        pytest.param(f"/v1/models/{MODEL}/versions/0", ["version"], id="version-zero"),
        pytest.param(f"/v1/models/{MODEL}/versions/canary", ["version"], id="unknown-alias"),
        pytest.param(
            f"/v1/models/{MODEL}/versions/%C2%B2", ["version"], id="unicode-digit-version"
        ),
        pytest.param(
            f"/v1/models/{MODEL}/example?version=9", ["version"], id="unknown-example-version"
        ),
        pytest.param(
            f"/v1/models/{MODEL}/example?version=canary", ["version"], id="unknown-example-alias"
        ),
        pytest.param(f"/v1/models/{MODEL}/nothing-here", [], id="unknown-route"),
        pytest.param("/v1/nothing/here", [], id="unknown-prefix"),
    ],
)
def test_models_returns_404_in_error_shape_for_unknown_target(client, path, fields):
    response = client.get(path)

    assert error_fields(response, 404) == fields


# --- OpenAPI -------------------------------------------------------------------------------


def test_openapi_documents_record_schema_with_the_real_feature_names(client):
    response = client.get("/openapi.json")

    assert response.status_code == 200, response.text
    schema = response.json()["components"]["schemas"]["HeartFailureRecord"]
    assert sorted(schema["properties"]) == sorted(FEATURES)
    assert sorted(schema["required"]) == sorted(FEATURES)
    assert schema["additionalProperties"] is False


def test_openapi_documents_a_predict_path_per_model_using_its_record_schema(client):
    document = client.get("/openapi.json").json()

    operation = document["paths"][f"/v1/models/{MODEL}/predict"]["post"]
    body_schema = str(operation["requestBody"]["content"]["application/json"]["schema"])
    assert "#/components/schemas/HeartFailureRecord" in body_schema
    default_body = document["paths"]["/predict"]["post"]["requestBody"]
    assert "#/components/schemas/HeartFailureRecord" in str(default_body)


def test_openapi_declares_boolean_columns_as_integers_from_0_to_1(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]["HeartFailureRecord"]

    for name in BOOLEANS:
        column = schema["properties"][name]
        assert column["type"] == "integer"
        assert (column.get("minimum"), column.get("maximum")) == (0, 1), column


def test_openapi_is_served_without_record_schemas_when_registry_is_empty(tmp_path):
    with TestClient(create_app(Settings(home=tmp_path))) as client:
        response = client.get("/openapi.json")

    assert response.status_code == 200, response.text
    assert "HeartFailureRecord" not in response.json()["components"]["schemas"]
    assert "/v1/models/{name}/predict" in response.json()["paths"]


def test_model_card_is_served_as_html_for_a_version_or_alias(client):
    for version in ("1", "production"):
        response = client.get(f"/v1/models/heart-failure/versions/{version}/card")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "<html" in response.text
        assert "heart-failure" in response.text


def test_model_card_returns_404_in_error_shape_for_unknown_version(client):
    response = client.get("/v1/models/heart-failure/versions/9/card")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "version_not_found"


# --- moving aliases --------------------------------------------------------------------------


def test_put_alias_moves_it_serves_the_new_version_and_rollback_returns(client, registry):
    from conftest import SEED_REQUEST

    first = registry.get_version(MODEL, 1)
    files = {name: registry.read_file(MODEL, 1, name) for name in first.manifest.files}
    registry.register(MODEL, files, first.manifest, first_alias=None)

    moved = client.put(f"/v1/models/{MODEL}/aliases/production", json={"version": 2})

    assert moved.status_code == 200, moved.text
    assert moved.json() == {"name": MODEL, "alias": "production", "version": 2, "previous": 1}
    assert client.post("/predict", content=SEED_REQUEST).json()["version"] == 2
    actions = [entry["action"] for entry in client.get("/v1/audit").json()]
    assert "PUT /v1/models/{name}/aliases/{alias}" in actions

    back = client.post(f"/v1/models/{MODEL}/aliases/production/rollback")

    assert back.status_code == 200, back.text
    assert back.json()["version"] == 1
    assert back.json()["previous"] == 2
    assert client.post("/predict", content=SEED_REQUEST).json()["version"] == 1
    again = client.post(f"/v1/models/{MODEL}/aliases/production/rollback")
    assert again.status_code == 409, again.text


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        (f"/v1/models/{MODEL}/aliases/production", {"version": 9}, 404, "version"),
        ("/v1/models/nope/aliases/production", {"version": 1}, 404, "name"),
        (f"/v1/models/{MODEL}/aliases/production", {"version": "one"}, 422, "version"),
        (f"/v1/models/{MODEL}/aliases/production", {"version": 1, "x": 1}, 422, "x"),
        (f"/v1/models/{MODEL}/aliases/0", {"version": 1}, 422, "alias"),
    ],
)
def test_put_alias_refuses_what_it_cannot_do_naming_the_field(client, path, body, status, field):
    answer = client.put(path, json=body)

    assert status == answer.status_code, answer.text
    assert field in error_fields(answer, status)
