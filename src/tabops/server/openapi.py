"""OpenAPI document: each served model's real fields, and every error the API answers."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from tabops.errors import TabopsError
from tabops.model.predictor import Predictor
from tabops.server.errors import dialect_of
from tabops.server.schemas import ErrorResponse, build_record_model
from tabops.serving.deployment import Deployment

_COMPONENTS = "#/components/schemas/{model}"
_ERROR = {"$ref": _COMPONENTS.format(model=ErrorResponse.__name__)}
_RETRY_AFTER = {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
_AUTHENTICATE = {"description": "The authentication scheme (Bearer).", "schema": {"type": "string"}}

# Answers any operation may give, whatever its route: the caller's key, the body's size,
# the caller's rate, and the server's state.
COMMON_ERRORS: dict[int, str] = {
    401: "No API key, or an unknown, expired or revoked one",
    403: "The key's scope or models do not cover this request",
    413: "The request body is larger than the server takes",
    429: "Too many requests from this key: retry after Retry-After seconds",
    503: "The database is busy or unavailable, the request timed out, or a model was refused",
    507: "No storage left to write to",
}
# Answers any operation with a JSON request body may give.
BODY_ERRORS: dict[int, str] = {400: "The body is empty or not valid JSON"}
# FastAPI's own validation error schemas, replaced by the API's one error shape.
_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
_ERROR_SCHEMAS = [{}, _ERROR, {"$ref": _COMPONENTS.format(model=_FASTAPI_ERRORS[0])}]


def json_request_body(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI ``requestBody`` object for a required JSON body of the given schema."""
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def build_openapi(app: FastAPI, deployment: Deployment) -> dict[str, Any]:
    """The app's OpenAPI document, with one predict path per loaded model and its fields.

    The generic ``/v1/models/{name}/predict`` route serves every model, so the document adds
    ``/v1/models/<model>/predict`` for each loaded model with the body generated from its
    feature spec, and gives ``/predict`` the default model's body. Every operation lists
    ``COMMON_ERRORS``, and every one taking a body ``BODY_ERRORS``, besides its route's own.
    """
    document = get_openapi(title=app.title, version=app.version, routes=app.routes)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    paths = document["paths"]
    generic = paths.get("/v1/models/{name}/predict", {}).get("post")
    try:
        default_name: str | None = deployment.default_model()
    except TabopsError:
        default_name = None
    for predictor in sorted(deployment.loaded(), key=lambda p: (p.name, p.version.version)):
        model = record_model_for(predictor)
        schema = model.model_json_schema(ref_template=_COMPONENTS)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        reference = {"$ref": _COMPONENTS.format(model=model.__name__)}
        body = json_request_body(
            {
                "anyOf": [
                    reference,
                    {
                        "type": "object",
                        "properties": {"features": reference},
                        "required": ["features"],
                    },
                ]
            }
        )
        if generic is not None:
            operation = copy.deepcopy(generic)
            operation["parameters"] = [
                p for p in operation.get("parameters", []) if p.get("name") != "name"
            ]
            operation["summary"] = f"Predict one {predictor.name} record"
            operation["operationId"] = f"predict_{predictor.name.replace('-', '_')}"
            operation["requestBody"] = body
            paths[f"/v1/models/{predictor.name}/predict"] = {"post": operation}
        if predictor.name == default_name and "/predict" in paths:
            paths["/predict"]["post"]["requestBody"] = body
    declare_errors(document, COMMON_ERRORS)
    declare_errors(document, BODY_ERRORS, with_body_only=True)
    declare_security(document)
    drop_remapped_validation_status(document)
    return document


def drop_remapped_validation_status(document: dict[str, Any]) -> None:
    """Drop the 422 FastAPI declares on paths whose protocol answers bad input otherwise.

    MLflow's scoring routes answer a caller's mistake as 400 (``server/errors.py``).
    """
    for path, operations in document.get("paths", {}).items():
        status, _body = dialect_of(path)(422, "invalid_request", "", ())
        if status != 422:
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)


OPEN_PATHS = ("/healthz", "/readyz", "/ping", "/health", "/v2/health/live", "/v2/health/ready")
"""Paths answered without a key (the API's description aside)."""


def declare_security(document: dict[str, Any]) -> None:
    """Declare the two ways to send a key, required everywhere but ``OPEN_PATHS``.

    Swagger UI's Authorize button then sends the key with every request it makes.
    """
    components = document.setdefault("components", {})
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "An API key."},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    document["security"] = [{"bearer": []}, {"apiKey": []}]
    for path in OPEN_PATHS:
        for operation in document.get("paths", {}).get(path, {}).values():
            operation["security"] = []
            operation.get("responses", {}).pop("401", None)
            operation.get("responses", {}).pop("403", None)


def error_response(description: str, status: int) -> dict[str, Any]:
    """An OpenAPI response object for an error: the API's one JSON shape, and its headers."""
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ERROR}},
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": _RETRY_AFTER}
    elif status in (401, 403):
        response["headers"] = {"WWW-Authenticate": _AUTHENTICATE}
    return response


def declare_errors(
    document: dict[str, Any], errors: Mapping[int, str], *, with_body_only: bool = False
) -> None:
    """Declare ``errors`` (status: description) on every operation of the document.

    Error answers come from ``server/errors.py``, always in the API's one JSON shape, so
    every error response declared by a route with that shape, or with none, or with
    FastAPI's validation error, is given that shape as JSON (FastAPI puts it under the
    media type of routes answering HTML or files). A route's own description is kept, and
    so is a route's own body for a status (``/readyz`` answers 503 with its status).

    Args:
        document: The OpenAPI document, changed in place.
        errors: The statuses to declare, with what each means.
        with_body_only: Declare them only on operations that take a request body.
    """
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[ErrorResponse.__name__] = ErrorResponse.model_json_schema(ref_template=_COMPONENTS)
    schemas.update(schemas[ErrorResponse.__name__].pop("$defs", {}))
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if with_body_only and "requestBody" not in operation:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in errors.items():
                responses.setdefault(str(status), {"description": description})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400 and _is_error_shape(response):
                    description = response.get("description") or errors.get(int(status), "")
                    responses[status] = error_response(description, int(status))
    for name in _FASTAPI_ERRORS:
        schemas.pop(name, None)


def _is_error_shape(response: dict[str, Any]) -> bool:
    """Whether a declared response has no body schema, or an error schema."""
    references = [media.get("schema", {}) for media in response.get("content", {}).values()]
    return all(reference in _ERROR_SCHEMAS for reference in references)


@lru_cache(maxsize=128)
def record_model_for(predictor: Predictor) -> type[BaseModel]:
    """The request model of a loaded version (built once per version)."""
    example = predictor.example() if len(predictor.examples) else None
    return build_record_model(predictor.name, predictor.spec, example)
