"""Prediction endpoints: one record, a batch of records, the default model.

Requests for a loaded version are answered by ``FastPredict`` before they reach these
routes; the routes serve the rest (first use of a version, alias re-read), doing the
registry I/O on a worker thread, then answer through the same ``predicting`` functions.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from tabops.predictor import Predictor
from tabops.server.deps import DeploymentDep, SettingsDep
from tabops.server.openapi import json_request_body
from tabops.server.predicting import Batchers, predict_batch, predict_one
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


async def _answer_one(predictor: Predictor, request: Request) -> Response:
    batchers: Batchers = request.app.state.batchers
    body = await request.body()
    return Response(await predict_one(predictor, body, batchers.get(predictor)), media_type=_JSON)


@router.post(
    "/predict",
    response_model=PredictionResponse,
    responses=_ERRORS,
    openapi_extra=RECORD_BODY,
    summary="Predict one record with the default model",
)
async def predict_default(request: Request, deployment: DeploymentDep) -> Response:
    """Score one record (flat, or under ``features``) with the default model in production."""
    predictor = await run_in_threadpool(deployment.get, deployment.default_model())
    return await _answer_one(predictor, request)


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
    name: str, request: Request, deployment: DeploymentDep, version: str | None = None
) -> Response:
    """Score one record with a model's production version, or ``?version=`` (number or alias)."""
    predictor = await run_in_threadpool(deployment.get, name, version)
    return await _answer_one(predictor, request)


@router.post(
    "/v1/models/{name}/predict/batch",
    response_model=BatchPredictionResponse,
    responses=_ERRORS,
    openapi_extra=BATCH_BODY,
    summary="Predict a batch of records",
)
async def predict_records(
    name: str,
    request: Request,
    deployment: DeploymentDep,
    settings: SettingsDep,
    version: str | None = None,
) -> Response:
    """Score ``{"records": [...]}``; answers in the same order, or names every bad field.

    Large batches are scored on a worker thread and their answer is streamed.
    """
    predictor = await run_in_threadpool(deployment.get, name, version)
    answer = await predict_batch(predictor, await request.body(), settings.max_batch_rows)
    if isinstance(answer, bytes):
        return Response(answer, media_type=_JSON)
    return StreamingResponse(answer, media_type=_JSON)
