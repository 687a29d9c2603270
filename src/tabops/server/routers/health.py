"""Liveness, readiness and system status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psutil
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from tabops import __version__
from tabops.errors import TabopsError
from tabops.security.access import describe_state
from tabops.server.deps import DeploymentDep, PolicyDep, ReadAccess
from tabops.server.schemas import HealthResponse

router = APIRouter(tags=["health"])
_NOT_READY = {
    "type": "object",
    "required": ["status", "reason"],
    "properties": {"status": {"const": "not ready"}, "reason": {"type": "string"}},
}


@router.get("/healthz")
def get_liveness() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        503: {
            "description": "Not ready: the default model is not loaded",
            "content": {"application/json": {"schema": _NOT_READY}},
        }
    },
)
def get_readiness(deployment: DeploymentDep) -> JSONResponse:
    """Ready when the default model's production version is loaded and verified."""
    try:
        name = deployment.default_model()
        predictor = deployment.get(name)
    except TabopsError as exc:
        return JSONResponse(status_code=503, content={"status": "not ready", "reason": exc.message})
    return JSONResponse(
        content={"status": "ready", "model": name, "version": predictor.version.version}
    )


@router.get("/v1/health", response_model=HealthResponse)
def get_health(_caller: ReadAccess, deployment: DeploymentDep, policy: PolicyDep) -> dict[str, Any]:
    """Uptime, memory, who may call the server, and the versions this process serves."""
    try:
        default: str | None = deployment.default_model()
    except TabopsError:
        default = None
    models = deployment.describe()["models"]
    healthy = bool(models) and all(model["status"] != "refused" for model in models)
    return {
        "status": "ok" if healthy else "degraded",
        "tabops_version": __version__,
        "uptime_seconds": (datetime.now(UTC) - deployment.started_at).total_seconds(),
        "memory_rss_bytes": psutil.Process().memory_info().rss,
        "default_model": default,
        "models": models,
        "auth": {"state": (state := policy.state()), "detail": describe_state(state)},
    }
