"""Predicting from an entity id, with the model's features from the online store.

This is the seed's ``/credit_risk/client_id={id}``; request-time values may override stored
ones for one request.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from tabops.errors import Problem
from tabops.feature_store.serving import EntityLookup
from tabops.predictor import Predictor
from tabops.server.deps import DeploymentDep, EntityLookupDep
from tabops.server.errors import RequestBodyError
from tabops.server.records import validate_record
from tabops.server.schemas import (
    EntityPredictionRequest,
    EntityPredictionResponse,
    ErrorResponse,
)

router = APIRouter(prefix="/v1/models", tags=["entities"])
_PATH = "/{name}/entities/{entity_id}/prediction"
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown model, version or entity"},
    409: {"model": ErrorResponse, "description": "The store lacks features the model needs"},
    422: {"model": ErrorResponse, "description": "An override is unknown or invalid"},
}


@router.get(_PATH, response_model=EntityPredictionResponse, responses=_ERRORS)
async def predict_entity(
    name: str,
    entity_id: str,
    deployment: DeploymentDep,
    lookup: EntityLookupDep,
    version: str | None = None,
) -> dict[str, Any]:
    """Predict for an entity from its stored features (``?version=`` as for predict)."""
    predictor = await run_in_threadpool(deployment.get, name, version)
    return await run_in_threadpool(_predict, predictor, lookup, entity_id, {})


@router.post(_PATH, response_model=EntityPredictionResponse, responses=_ERRORS)
async def predict_entity_with_overrides(
    name: str,
    entity_id: str,
    body: EntityPredictionRequest,
    deployment: DeploymentDep,
    lookup: EntityLookupDep,
    version: str | None = None,
) -> dict[str, Any]:
    """As the GET, with ``{"overrides": {...}}`` replacing stored values for this request."""
    predictor = await run_in_threadpool(deployment.get, name, version)
    return await run_in_threadpool(_predict, predictor, lookup, entity_id, body.overrides)


def _predict(
    predictor: Predictor, lookup: EntityLookup, entity_id: str, overrides: dict[str, Any]
) -> dict[str, Any]:
    found = lookup.features(predictor, entity_id)
    unknown = [key for key in overrides if key not in found.record]
    if unknown:
        raise RequestBodyError(
            422,
            "invalid_input",
            f"{predictor.version.ref} takes no feature(s) {', '.join(unknown)}",
            [Problem(f"overrides.{key}", "not a feature of the model") for key in unknown],
        )
    record, problems = validate_record(predictor, {**found.record, **overrides})
    bad_overrides = [p for p in problems if p.field.split(".")[0] in overrides]
    if bad_overrides:
        prefixed = [Problem(f"overrides.{p.field}", p.problem) for p in bad_overrides]
        raise RequestBodyError(422, "invalid_input", "some overrides are invalid", prefixed)
    if problems:
        raise RequestBodyError(
            409,
            "stored_features_invalid",
            f"the stored features of entity {entity_id!r} do not fit {predictor.version.ref}; "
            "materialize them again",
            problems,
        )
    prediction = predictor.predict_records([record])[0]
    return {
        "entity_id": found.row.entity_id,
        "view": found.row.view,
        "prediction_id": secrets.token_hex(16),
        "model": predictor.name,
        "version": predictor.version.version,
        "label": prediction.label,
        "class_name": prediction.class_name,
        "probability": prediction.probability,
        "threshold": predictor.threshold,
        "features": record,
        "overridden": sorted(overrides),
        "event_time": found.row.event_time,
        "materialized_at": found.row.materialized_at,
        "timestamp": datetime.now(UTC).isoformat(),
    }
