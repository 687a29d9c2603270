"""Liveness, readiness and system status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psutil
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from tabops import __version__
from tabops.errors import TabopsError
from tabops.server.deps import DeploymentDep
from tabops.server.schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
def get_liveness() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
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
def get_health(deployment: DeploymentDep) -> dict[str, Any]:
    """Uptime, memory and the versions this process serves."""
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
    }
