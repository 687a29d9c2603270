"""The OpenAPI document declares every answer an operation can give, in the shape it has."""

from __future__ import annotations

import pytest

from tabops.server.errors import api_dialect, dialect_of

ERROR = {"$ref": "#/components/schemas/ErrorResponse"}
COMMON = {"401", "403", "413", "429", "503", "507"}


@pytest.fixture
def document(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()


def operations(document: dict):
    """Every operation whose errors are written in the API's shape (not another protocol's)."""
    for path, item in document["paths"].items():
        if dialect_of(path) is not api_dialect:
            continue
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_declares_the_common_errors_in_the_error_shape(document):
    for label, operation in operations(document):
        responses = operation["responses"]
        expected = COMMON - ({"401", "403"} if operation.get("security") == [] else set())
        assert set(responses) >= expected, label
        for status in expected - ({"503"} if label == "GET /readyz" else set()):
            assert responses[status]["content"] == {"application/json": {"schema": ERROR}}, label


def test_retry_after_and_www_authenticate_are_declared_where_they_are_sent(document):
    responses = document["paths"]["/v1/models"]["get"]["responses"]

    assert "Retry-After" in responses["429"]["headers"]
    assert "Retry-After" in responses["503"]["headers"]
    assert "WWW-Authenticate" in responses["401"]["headers"]


def test_every_operation_taking_a_body_declares_400(document):
    with_body = [(label, op) for label, op in operations(document) if "requestBody" in op]

    assert with_body
    for label, operation in with_body:
        assert operation["responses"]["400"]["content"]["application/json"] == {"schema": ERROR}, (
            label
        )


def test_validation_errors_are_documented_in_the_error_shape_not_fastapis(document):
    listed = document["paths"]["/v1/jobs"]["get"]["responses"]["422"]

    assert listed["content"] == {"application/json": {"schema": ERROR}}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ErrorResponse" in document["components"]["schemas"]


def test_a_route_answering_html_documents_its_errors_as_json(document):
    responses = document["paths"]["/v1/models/{name}/versions/{version}/card"]["get"]["responses"]

    assert set(responses["200"]["content"]) == {"text/html"}
    assert responses["404"]["content"] == {"application/json": {"schema": ERROR}}


def test_readyz_keeps_its_own_503_body(document):
    schema = document["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]

    assert schema["schema"]["required"] == ["status", "reason"]


def test_downloads_document_the_media_types_they_answer(document):
    result = document["paths"]["/v1/jobs/{job_id}/result"]["get"]["responses"]["200"]["content"]
    errors = document["paths"]["/v1/jobs/{job_id}/errors"]["get"]["responses"]["200"]["content"]

    assert set(result) == {"text/csv", "application/vnd.apache.parquet", "application/json"}
    assert set(errors) == {"text/csv"}


def test_the_document_says_how_to_send_a_key_and_which_paths_need_none(client):
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": "An API key."}
    assert schemes["apiKey"]["name"] == "X-API-Key"
    assert document["security"] == [{"bearer": []}, {"apiKey": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert "401" not in document["paths"]["/readyz"]["get"]["responses"]
    assert "security" not in document["paths"]["/v1/train"]["post"]
    assert "401" in document["paths"]["/v1/train"]["post"]["responses"]
