"""MLflow's scoring server routes: ``/invocations``, ``/ping``, ``/health`` and ``/version``.

A client written for ``mlflow models serve`` works unchanged against tabops. Scoring goes
through the serving core (``authorize``, rate limits, the prediction log) as every route
does; errors are written as MLflow writes them, ``{"error_code", "message"}`` (the
dialect ``server/errors.py`` picks by path).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse

from tabops import __version__
from tabops.server.codecs import mlflow
from tabops.server.codecs.mlflow_json import FORMATS, PREDICT_METHODS
from tabops.server.deps import (
    CoreDep,
    DeploymentDep,
    ReadAccess,
    SettingsDep,
    request_context,
)
from tabops.server.routers.health import get_readiness
from tabops.serving.core import ServingCore

router = APIRouter(tags=["mlflow"])

_ERROR = {
    "type": "object",
    "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    403: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"schema": {"type": "integer"}}},
    503: {"Retry-After": {"schema": {"type": "integer"}}},
}
_STATUSES = {
    400: "Bad input (BAD_REQUEST): no or several format keys, a row of the wrong shape, "
    "a bad value named by row and column, an unknown param or predict method, bad CSV",
    401: "No API key, or an unknown, expired or revoked one (UNAUTHENTICATED)",
    403: "The key's scope or models do not cover this model (PERMISSION_DENIED)",
    404: "Unknown model or version (RESOURCE_DOES_NOT_EXIST)",
    413: "More rows than the server scores at once, or a body beyond its size limit",
    415: "A content type other than application/json or text/csv, or not UTF-8",
    429: "Too many requests from this key (REQUEST_LIMIT_EXCEEDED): see Retry-After",
    503: "The model was refused, the database is busy, or the request timed out",
    507: "No storage left to write to",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for ``statuses``, in MLflow's error shape."""
    return {
        status: {
            "description": _STATUSES[status],
            "content": {"application/json": {"schema": _ERROR}},
            **({"headers": _HEADERS[status]} if status in _HEADERS else {}),
        }
        for status in statuses
    }


_SPLIT = {
    "type": "object",
    "required": ["columns", "data"],
    "properties": {
        "columns": {"type": "array", "items": {"type": "string"}},
        "data": {"type": "array", "items": {"type": "array"}},
        "index": {"type": "array"},
    },
}
_ROWS = {"type": "array", "items": {"anyOf": [{"type": "object"}, {"type": "array"}]}}
_PARAMS = {
    "type": "object",
    "properties": {"predict_method": {"type": "string", "enum": list(PREDICT_METHODS)}},
}
_JSON_BODY = {
    "type": "object",
    "description": "Rows under exactly one of the four format keys; optional params.",
    "oneOf": [{"required": [key]} for key in FORMATS],
    "properties": {
        "dataframe_split": _SPLIT,
        "dataframe_records": {"type": "array", "items": {"type": "object"}},
        "instances": _ROWS,
        "inputs": {"anyOf": [_ROWS, {"type": "object"}]},
        "params": _PARAMS,
    },
}
_INVOCATION = {
    "requestBody": {
        "required": True,
        "content": {
            mlflow.JSON_MEDIA: {"schema": _JSON_BODY},
            mlflow.CSV_MEDIA: {
                "schema": {"type": "string", "description": "A header row of feature names."}
            },
        },
    }
}
_PREDICTIONS = {
    "description": "One prediction per row, in row order",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["predictions"],
                "properties": {"predictions": {"type": "array"}},
            }
        }
    },
}
_INVOCATION_RESPONSES = {200: _PREDICTIONS, **_errors(400, 401, 403, 404, 413, 415, 429, 503, 507)}
PredictMethod = Annotated[
    str | None,
    Query(
        description="What a prediction is: predict (the label, the default), predict_proba "
        "(the positive class's probability) or decision (the full decision per row); "
        "params.predict_method says the same in a JSON body.",
        pattern="^(predict|predict_proba|decision)$",
    ),
]


async def _invoke(
    request: Request,
    core: ServingCore,
    max_rows: int,
    target: tuple[str | None, str | None],
    method: str | None,
) -> Response:
    context = request_context(request, "invocations")
    # Authorized (and charged to the key's rate) before the body is read.
    predictor = await core.resolve(context, *target)
    body = await request.body()
    content_type = request.headers.get("content-type")
    answer = await mlflow.invoke(
        core,
        context,
        predictor,
        body,
        content_type=content_type,
        predict_method=method,
        max_rows=max_rows,
    )
    return Response(answer, media_type=mlflow.JSON_MEDIA)


@router.post(
    "/invocations",
    responses=_INVOCATION_RESPONSES,
    openapi_extra=_INVOCATION,
    summary="Score rows with the default model (MLflow's scoring protocol)",
)
async def invoke_default(
    request: Request, core: CoreDep, settings: SettingsDep, predict_method: PredictMethod = None
) -> Response:
    """Score rows with the default model, as ``mlflow models serve`` answers them.

    The body is JSON with rows under exactly one of ``dataframe_split``,
    ``dataframe_records``, ``instances`` (records, or rows in feature order) or ``inputs``
    (those, or columns of values), optionally with ``params``, or CSV with a header row.
    The answer is ``{"predictions": [...]}`` in row order. A prediction is the label at the
    version's threshold by default (``predict``, as MLflow's scikit-learn flavor answers);
    ``predict_proba`` gives the positive class's probability, and ``decision`` the v1
    decision per row with the model, version, threshold and time beside. Each row is
    validated as ``/v1`` validates it: a bad value is a 400 naming its row and column.
    """
    max_rows = settings.serving.max_batch_rows
    return await _invoke(request, core, max_rows, (None, None), predict_method)


@router.post(
    "/v1/models/{name}/invocations",
    responses=_INVOCATION_RESPONSES,
    openapi_extra=_INVOCATION,
    summary="Score rows with a model (MLflow's scoring protocol)",
)
async def invoke_model(
    name: str,
    request: Request,
    core: CoreDep,
    settings: SettingsDep,
    version: str | None = None,
    predict_method: PredictMethod = None,
) -> Response:
    """As ``POST /invocations``, with a model's production version or ``?version=``."""
    max_rows = settings.serving.max_batch_rows
    return await _invoke(request, core, max_rows, (name, version), predict_method)


_READINESS = {
    "description": "Not ready: the default model cannot be served",
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {
                        "type": "object",
                        "required": ["status", "reason"],
                        "properties": {
                            "status": {"const": "not ready"},
                            "reason": {"type": "string"},
                        },
                    },
                    _ERROR,
                ]
            }
        }
    },
}


@router.get("/ping", responses={503: _READINESS, **_errors(413, 429, 507)})
def ping(deployment: DeploymentDep) -> Response:
    """200 when the default model can be served, 503 otherwise (as ``/readyz``)."""
    return get_readiness(deployment)


@router.get("/health", responses={503: _READINESS, **_errors(413, 429, 507)})
def get_mlflow_health(deployment: DeploymentDep) -> Response:
    """The same as ``/ping``, under the other name MLflow's scoring server gives it."""
    return get_readiness(deployment)


@router.get(
    "/version",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **_errors(401, 403, 413, 429, 503),
    },
)
def get_version(_caller: ReadAccess) -> PlainTextResponse:
    """The server's tabops version, as plain text (MLflow answers its own version so)."""
    return PlainTextResponse(__version__)
