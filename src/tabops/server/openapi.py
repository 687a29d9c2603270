"""OpenAPI document whose predict bodies show each served model's real fields."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from tabops.errors import TabopsError
from tabops.model.predictor import Predictor
from tabops.server.schemas import build_record_model
from tabops.serving.deployment import Deployment

_COMPONENTS = "#/components/schemas/{model}"


def json_request_body(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI ``requestBody`` object for a required JSON body of the given schema."""
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def build_openapi(app: FastAPI, deployment: Deployment) -> dict[str, Any]:
    """The app's OpenAPI document, with one predict path per loaded model and its fields.

    The generic ``/v1/models/{name}/predict`` route serves every model, so the document adds
    ``/v1/models/<model>/predict`` for each loaded model with the body generated from its
    feature spec, and gives ``/predict`` the default model's body.
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
    return document


@lru_cache(maxsize=128)
def record_model_for(predictor: Predictor) -> type[BaseModel]:
    """The request model of a loaded version (built once per version)."""
    example = predictor.example() if len(predictor.examples) else None
    return build_record_model(predictor.name, predictor.spec, example)
