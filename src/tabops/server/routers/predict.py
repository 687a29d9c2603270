"""Prediction endpoints: one record, a batch of records, the default model.

``FastPredict`` answers these paths before routing; these routes document them in OpenAPI
and answer what the fast path passes on (a query string beyond ``version``), through the
same ``PredictEndpoints``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from tabops.server.deps import EndpointsDep, request_context
from tabops.server.endpoints import PredictEndpoints, Target
from tabops.server.openapi import json_request_body
from tabops.server.schemas import BatchPredictionResponse, ErrorResponse, PredictionResponse

router = APIRouter(tags=["predict"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Empty or malformed body"},
    404: {"model": ErrorResponse, "description": "Unknown model or version"},
    413: {"model": ErrorResponse, "description": "More records than the server takes at once"},
    422: {"model": ErrorResponse, "description": "A field is missing, unknown or invalid"},
}
RECORD_BODY = {
    "requestBody": json_request_body(
        {"type": "object", "description": "One record of the features, flat or under 'features'."}
    )
}
BATCH_BODY = {
    "requestBody": json_request_body(
        {
            "type": "object",
            "required": ["records"],
            "properties": {"records": {"type": "array", "items": {"type": "object"}}},
        }
    )
}
_JSON = "application/json"


async def answer(
    endpoints: PredictEndpoints,
    request: Request,
    target: Target,
    overrides: dict[str, Any] | None = None,
) -> Response:
    """The endpoints' answer as a response (streamed for large batches)."""
    context = request_context(request, target.route)
    body = await request.body()
    found = await endpoints.answer(context, target, body, overrides or {})
    headers = {"x-request-id": context.request_id} if context.has_offered_id else {}
    if isinstance(found, bytes):
        return Response(found, media_type=_JSON, headers=headers)
    return StreamingResponse(found, media_type=_JSON, headers=headers)


@router.post(
    "/predict",
    response_model=PredictionResponse,
    responses=_ERRORS,
    openapi_extra=RECORD_BODY,
    summary="Predict one record with the default model",
)
async def predict_default(request: Request, endpoints: EndpointsDep) -> Response:
    """Score one record (flat, or under ``features``) with the default model in production."""
    return await answer(endpoints, request, Target("predict", None, None))


router.add_api_route(
    "/predict/",
    predict_default,
    methods=["POST"],
    response_model=PredictionResponse,
    include_in_schema=False,
)


@router.post(
    "/v1/models/{name}/predict",
    response_model=PredictionResponse,
    responses=_ERRORS,
    openapi_extra=RECORD_BODY,
    summary="Predict one record",
)
async def predict_record(
    name: str, request: Request, endpoints: EndpointsDep, version: str | None = None
) -> Response:
    """Score one record with a model's production version, or ``?version=`` (number or alias)."""
    return await answer(endpoints, request, Target("predict", name, version))


@router.post(
    "/v1/models/{name}/predict/batch",
    response_model=BatchPredictionResponse,
    responses=_ERRORS,
    openapi_extra=BATCH_BODY,
    summary="Predict a batch of records",
)
async def predict_records(
    name: str, request: Request, endpoints: EndpointsDep, version: str | None = None
) -> Response:
    """Score ``{"records": [...]}``; answers in the same order, or names every bad field.

    Large batches are scored on a worker thread and their answer is streamed.
    """
    return await answer(endpoints, request, Target("predict_batch", name, version))
