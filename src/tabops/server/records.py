"""Turning raw request bodies into validated records of a model's features."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ValidationError

from tabops.errors import Problem
from tabops.predictor import Predictor
from tabops.server.errors import RequestBodyError, problems_from_pydantic
from tabops.server.schemas import build_record_model


@lru_cache(maxsize=128)
def record_model_for(predictor: Predictor) -> type[BaseModel]:
    """The request model of a loaded version (built once per version)."""
    example = predictor.example() if len(predictor.examples) else None
    return build_record_model(predictor.name, predictor.spec, example)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400/422 naming what is wrong with it."""
    if not body.strip():
        raise RequestBodyError(400, "empty_body", "the request body is empty; send a JSON object")
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestBodyError(
            400, "malformed_json", f"the request body is not valid JSON: {exc}"
        ) from exc
    if not isinstance(document, dict):
        raise RequestBodyError(
            422,
            "invalid_request",
            "the request body must be a JSON object",
            [Problem("body", f"expected an object, got {type(document).__name__}")],
        )
    return document


def validate_record(
    predictor: Predictor, document: Any, prefix: str = ""
) -> tuple[dict[str, Any], list[Problem]]:
    """Validate one record against the version's request model; returns (values, problems)."""
    if not isinstance(document, dict):
        where = prefix or "body"
        return {}, [Problem(where, f"expected an object, got {type(document).__name__}")]
    try:
        record = record_model_for(predictor).model_validate(document)
    except ValidationError as exc:
        return {}, problems_from_pydantic(exc.errors(), prefix)
    return record.model_dump(), []


def unwrap_features(predictor: Predictor, document: dict[str, Any]) -> Any:
    """Accept ``{"features": {...}}`` as well as a flat record."""
    if (
        set(document) == {"features"}
        and "features" not in predictor.spec.feature_names
        and isinstance(document["features"], dict)
    ):
        return document["features"]
    return document
