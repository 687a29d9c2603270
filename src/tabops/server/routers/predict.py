"""Prediction endpoints: one record, a batch of records, the default model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from tabops.errors import Problem
from tabops.predictor import Predictor
from tabops.server.deps import DeploymentDep, SettingsDep
from tabops.server.errors import RequestBodyError
from tabops.server.openapi import json_request_body
from tabops.server.records import parse_json_object, unwrap_features, validate_record
from tabops.server.schemas import BatchPredictionResponse, ErrorResponse, PredictionResponse

router = APIRouter(tags=["predict"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Empty or malformed body"},
    404: {"model": ErrorResponse, "description": "Unknown model or version"},
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


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _predict_one(predictor: Predictor, request: Request) -> dict[str, Any]:
    document = unwrap_features(predictor, parse_json_object(await request.body()))
    record, problems = validate_record(predictor, document)
    if problems:
        raise RequestBodyError(422, "invalid_input", "the record is invalid", problems)
    prediction = (await run_in_threadpool(predictor.predict_records, [record]))[0]
    return {
        "prediction_id": uuid.uuid4().hex,
        "model": predictor.name,
        "version": predictor.version.version,
        "label": prediction.label,
        "class_name": prediction.class_name,
        "probability": prediction.probability,
        "threshold": predictor.threshold,
        "timestamp": _now(),
    }


@router.post(
    "/predict",
    response_model=PredictionResponse,
    responses=_ERRORS,
    openapi_extra=RECORD_BODY,
    summary="Predict one record with the default model",
)
async def predict_default(request: Request, deployment: DeploymentDep) -> dict[str, Any]:
    """Score one record (flat, or under ``features``) with the default model in production."""
    predictor = await run_in_threadpool(deployment.get, deployment.default_model())
    return await _predict_one(predictor, request)


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
) -> dict[str, Any]:
    """Score one record with a model's production version, or ``?version=`` (number or alias)."""
    predictor = await run_in_threadpool(deployment.get, name, version)
    return await _predict_one(predictor, request)


@router.post(
    "/v1/models/{name}/predict/batch",
    response_model=BatchPredictionResponse,
    responses=_ERRORS,
    openapi_extra=BATCH_BODY,
    summary="Predict a batch of records",
)
async def predict_batch(
    name: str,
    request: Request,
    deployment: DeploymentDep,
    settings: SettingsDep,
    version: str | None = None,
) -> dict[str, Any]:
    """Score ``{"records": [...]}``; answers in the same order, or names every bad field."""
    predictor = await run_in_threadpool(deployment.get, name, version)
    document = parse_json_object(await request.body())
    records = document.get("records")
    unknown = sorted(set(document) - {"records"})
    if unknown or not isinstance(records, list):
        problems = [Problem(key, "unknown field") for key in unknown]
        if not isinstance(records, list):
            problems.append(Problem("records", "field required: a list of records"))
        raise RequestBodyError(422, "invalid_input", "the batch is invalid", problems)
    if not records:
        raise RequestBodyError(
            422, "invalid_input", "the batch is empty", [Problem("records", "must not be empty")]
        )
    if len(records) > settings.max_batch_rows:
        raise RequestBodyError(
            413,
            "batch_too_large",
            f"{len(records)} records exceed the limit of {settings.max_batch_rows}; "
            "split the batch or submit a job",
            [Problem("records", f"at most {settings.max_batch_rows} records")],
        )
    valid, problems = [], []
    for index, item in enumerate(records):
        record, errors = validate_record(predictor, item, prefix=f"records[{index}]")
        valid.append(record)
        problems.extend(errors)
    if problems:
        raise RequestBodyError(422, "invalid_input", "some records are invalid", problems)
    predictions = await run_in_threadpool(predictor.predict_records, valid)
    return {
        "model": predictor.name,
        "version": predictor.version.version,
        "threshold": predictor.threshold,
        "timestamp": _now(),
        "predictions": [
            {
                "prediction_id": uuid.uuid4().hex,
                "label": prediction.label,
                "class_name": prediction.class_name,
                "probability": prediction.probability,
            }
            for prediction in predictions
        ],
    }
