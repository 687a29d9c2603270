"""Predicting from an entity id, with the model's features from the online store.

This is the seed's ``/credit_risk/client_id={id}``; request-time values may override stored
ones for one request.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from tabops.errors import InvalidRequestError, MalformedBodyError
from tabops.server.deps import EndpointsDep, request_context
from tabops.server.endpoints import Target
from tabops.server.errors import problems_from_pydantic
from tabops.server.openapi import json_request_body
from tabops.server.routers.predict import answer
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
    endpoints: EndpointsDep,
    version: str | None = None,
) -> Response:
    """Predict for an entity from its stored features (``?version=`` as for predict)."""
    return await answer(endpoints, request, Target("entity", name, version, entity_id))


@router.post(
    _PATH,
    response_model=EntityPredictionResponse,
    responses=_ERRORS,
    openapi_extra={"requestBody": json_request_body(EntityPredictionRequest.model_json_schema())},
)
async def predict_entity_with_overrides(
    name: str,
    entity_id: str,
    request: Request,
    endpoints: EndpointsDep,
    version: str | None = None,
) -> Response:
    """As the GET, with ``{"overrides": {...}}`` replacing stored values for this request."""
    # The caller is authorized before the body is looked at, as on every predict route.
    await endpoints.core.resolve(request_context(request, "entity"), name, version)
    try:
        body = EntityPredictionRequest.model_validate_json(await request.body() or b"{}")
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise MalformedBodyError("the request body is not valid JSON") from None
        problems = problems_from_pydantic(exc.errors())
        raise InvalidRequestError("the request is invalid", problems) from None
    target = Target("entity", name, version, entity_id)
    return await answer(endpoints, request, target, body.overrides)
