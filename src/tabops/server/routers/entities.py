"""Predicting from an entity id, with the model's features from the online store.

This is the seed's ``/credit_risk/client_id={id}``; request-time values may override stored
ones for one request.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from tabops.deployment import Deployment
from tabops.feature_store.serving import EntityLookup
from tabops.server.deps import DeploymentDep, EntityLookupDep
from tabops.server.predicting import predict_entity as predict_stored_entity
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
    request: Request,
    deployment: DeploymentDep,
    lookup: EntityLookupDep,
    version: str | None = None,
) -> Response:
    """Predict for an entity from its stored features (``?version=`` as for predict)."""
    return await _answer(request, deployment, lookup, name, version, entity_id, {})


@router.post(_PATH, response_model=EntityPredictionResponse, responses=_ERRORS)
async def predict_entity_with_overrides(
    name: str,
    entity_id: str,
    body: EntityPredictionRequest,
    request: Request,
    deployment: DeploymentDep,
    lookup: EntityLookupDep,
    version: str | None = None,
) -> Response:
    """As the GET, with ``{"overrides": {...}}`` replacing stored values for this request."""
    return await _answer(request, deployment, lookup, name, version, entity_id, body.overrides)


async def _answer(
    request: Request,
    deployment: Deployment,
    lookup: EntityLookup,
    name: str,
    version: str | None,
    entity_id: str,
    overrides: dict[str, Any],
) -> Response:
    predictor = await run_in_threadpool(deployment.get, name, version)
    batcher = request.app.state.batchers.get(predictor)
    answer = await predict_stored_entity(predictor, lookup, entity_id, overrides, batcher)
    return Response(answer, media_type="application/json")
