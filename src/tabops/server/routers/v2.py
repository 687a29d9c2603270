"""The Open Inference Protocol V2 (REST): health, server and model metadata, inference.

``FastPredict`` answers the infer paths before routing; the infer routes here document them
in OpenAPI and answer what the fast path passes on (any query string), through the same
``PredictEndpoints``. Errors are written in the protocol's ``{"error": "..."}`` shape
(``server/errors.py``), 400 for every bad request.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tabops.errors import TabopsError
from tabops.model.predictor import Predictor
from tabops.server.codecs import v2
from tabops.server.codecs.v2_binary import HEADER_LENGTH
from tabops.server.codecs.v2_outputs import OUTPUTS
from tabops.server.deps import DeploymentDep, EndpointsDep, ReadAccess, request_context
from tabops.server.endpoints import INFER, PredictEndpoints, Target
from tabops.serving.deployment import Deployment

router = APIRouter(prefix="/v2", tags=["v2"])

_ERROR = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        }
    }
}
_STATUSES = {
    400: "A malformed request, or inputs that do not fit the model (each one named)",
    401: "No API key, or an unknown, expired or revoked one",
    403: "The key's scope or models do not cover this request",
    404: "Unknown model or version",
    413: "The request body, or its rows, are more than the server takes",
    429: "Too many requests from this key: retry after Retry-After seconds",
    503: "The database is busy or unavailable, the request timed out, or a model was refused",
    507: "No storage left to write to",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Responses for ``statuses`` in the protocol's error shape."""
    return {status: {"description": _STATUSES[status], "content": _ERROR} for status in statuses}


_GUARDED = _errors(400, 401, 403, 404, 413, 429, 503, 507)
_OPEN = _errors(400, 413, 429, 503, 507)
_TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": _TENSOR},
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"enum": list(OUTPUTS)},
                                    "parameters": {"type": "object"},
                                },
                            },
                        },
                    },
                }
            },
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": f"The JSON header ({HEADER_LENGTH} bytes), then tensor data.",
                }
            },
        },
    }
}
_INFERRED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The outputs; binary ones follow the JSON header",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **_GUARDED,
}


@router.get("", responses=_GUARDED, summary="Server metadata")
def get_server_metadata(_caller: ReadAccess) -> dict[str, Any]:
    """The server's name, version and the protocol extensions it supports."""
    return v2.server_metadata()


@router.get("/health/live", responses=_OPEN, summary="Server liveness")
def get_server_live() -> dict[str, bool]:
    """The process is up."""
    return {"live": True}


@router.get("/health/ready", responses=_OPEN, summary="Server readiness")
def get_server_ready(deployment: DeploymentDep) -> JSONResponse:
    """Ready when the default model's production version is loaded and verified."""
    try:
        deployment.get(deployment.default_model())
    except TabopsError as exc:
        return JSONResponse(status_code=503, content={"error": exc.message})
    return JSONResponse(content={"ready": True})


async def _loaded(deployment: Deployment, name: str, version: str | None) -> Predictor:
    return await run_in_threadpool(deployment.get, name, version)


@router.get("/models/{name}", responses=_GUARDED, summary="Model metadata")
async def get_model_metadata(
    name: str, _caller: ReadAccess, deployment: DeploymentDep
) -> dict[str, Any]:
    """A model's versions, platform, inputs (one per feature) and outputs."""
    predictor = await _loaded(deployment, name, None)
    versions = await run_in_threadpool(deployment.registry.list_versions, name)
    return v2.model_metadata(predictor, versions)


@router.get("/models/{name}/versions/{version}", responses=_GUARDED, summary="Version metadata")
async def get_version_metadata(
    name: str, version: str, _caller: ReadAccess, deployment: DeploymentDep
) -> dict[str, Any]:
    """One version's metadata; ``version`` is a number or an alias."""
    predictor = await _loaded(deployment, name, version)
    return v2.model_metadata(predictor, [predictor.version.version])


@router.get("/models/{name}/ready", responses=_GUARDED, summary="Model readiness")
async def get_model_ready(
    name: str, _caller: ReadAccess, deployment: DeploymentDep
) -> dict[str, Any]:
    """Ready once the model's production version is loaded and verified."""
    await _loaded(deployment, name, None)
    return {"name": name, "ready": True}


@router.get(
    "/models/{name}/versions/{version}/ready", responses=_GUARDED, summary="Version readiness"
)
async def get_version_ready(
    name: str, version: str, _caller: ReadAccess, deployment: DeploymentDep
) -> dict[str, Any]:
    """Ready once the version (a number or an alias) is loaded and verified."""
    await _loaded(deployment, name, version)
    return {"name": name, "ready": True}


async def _infer(endpoints: PredictEndpoints, request: Request, target: Target) -> Response:
    context = request_context(request, INFER)
    body = await request.body()
    answer = await endpoints.infer(context, target, body, request.headers.get(HEADER_LENGTH))
    headers = {"x-request-id": context.request_id} if context.has_offered_id else {}
    if answer.header_length is None:
        return Response(answer.body, media_type="application/json", headers=headers)
    headers[HEADER_LENGTH] = str(answer.header_length)
    return Response(answer.body, media_type="application/octet-stream", headers=headers)


@router.post(
    "/models/{name}/infer", responses=_INFERRED, openapi_extra=_INFER_BODY, summary="Infer"
)
async def infer_model(name: str, request: Request, endpoints: EndpointsDep) -> Response:
    """Score tensors with a model's production version."""
    return await _infer(endpoints, request, Target(INFER, name, None))


@router.post(
    "/models/{name}/versions/{version}/infer",
    responses=_INFERRED,
    openapi_extra=_INFER_BODY,
    summary="Infer with a version",
)
async def infer_version(
    name: str, version: str, request: Request, endpoints: EndpointsDep
) -> Response:
    """Score tensors with a version, by number or alias."""
    return await _infer(endpoints, request, Target(INFER, name, version))
