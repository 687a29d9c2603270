"""Model endpoints: what is registered, a version's manifest, a real example record."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from tabops.errors import CardNotFoundError, InvalidRequestError, ModelNotFoundError, Problem
from tabops.model.files import CARD_FILE
from tabops.server.deps import DeploymentDep, ReadAccess, RegistryDep
from tabops.server.schemas import (
    ErrorResponse,
    ModelSummaryResponse,
    ModelVersionResponse,
    VersionSummaryResponse,
)

router = APIRouter(prefix="/v1/models", tags=["models"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}
_HEADLINE = ("created", "candidate", "threshold", "metrics", "training_seconds", "compiled")


def _summary(registry: Any, name: str) -> dict[str, Any]:
    versions = registry.list_versions(name)
    if not versions:
        raise ModelNotFoundError(
            f"model {name!r} not found", [Problem("name", "no model of that name is registered")]
        )
    aliases = registry.aliases(name)
    production = None
    if "production" in aliases:
        manifest = registry.get_version(name, "production").manifest.document()
        production = {"version": aliases["production"]} | {k: manifest.get(k) for k in _HEADLINE}
    return {"name": name, "versions": versions, "aliases": aliases, "production": production}


@router.get("", response_model=list[ModelSummaryResponse])
def list_models(caller: ReadAccess, registry: RegistryDep) -> list[dict[str, Any]]:
    """Every registered model the caller's key may use, with its versions and aliases."""
    return [_summary(registry, name) for name in registry.list_models() if caller.may_use(name)]


@router.get("/{name}", response_model=ModelSummaryResponse, responses=_NOT_FOUND)
def get_model(name: str, _caller: ReadAccess, registry: RegistryDep) -> dict[str, Any]:
    """One model: versions, aliases and its production version's headline facts."""
    return _summary(registry, name)


@router.get("/{name}/versions", response_model=list[VersionSummaryResponse], responses=_NOT_FOUND)
def list_model_versions(
    name: str, _caller: ReadAccess, registry: RegistryDep
) -> list[dict[str, Any]]:
    """Every version of a model, oldest first, with its metrics, aliases and tags."""
    from tabops.registry.tags import VersionTags

    versions = registry.list_versions(name)
    if not versions:
        registry.resolve(name)  # raises the not-found error
    aliases = registry.aliases(name)
    tags = VersionTags(registry.store).of(name)
    listing = []
    for number in versions:
        summary = registry.summarize_version(name, number)
        listing.append(
            {
                "version": number,
                "created": summary.created,
                "metrics": summary.metrics,
                "aliases": sorted(alias for alias, v in aliases.items() if v == number),
                "tags": tags.get(number, []),
            }
        )
    return listing


@router.get("/{name}/versions/{version}", response_model=ModelVersionResponse, responses=_NOT_FOUND)
def get_model_version(
    name: str, version: str, _caller: ReadAccess, registry: RegistryDep
) -> dict[str, Any]:
    """A version's full manifest (``version`` is a number or an alias)."""
    found = registry.get_version(name, version)
    aliases = [alias for alias, v in registry.aliases(name).items() if v == found.version]
    return {
        "name": name,
        "version": found.version,
        "aliases": sorted(aliases),
        "manifest": found.manifest.document(),
    }


@router.get(
    "/{name}/versions/{version}/card",
    response_class=HTMLResponse,
    responses=_NOT_FOUND,
    summary="The model card of a version",
)
def get_model_card(
    name: str, version: str, _caller: ReadAccess, registry: RegistryDep
) -> HTMLResponse:
    """The version's model card, a self-contained HTML page (``version``: number or alias)."""
    found = registry.get_version(name, version)
    try:
        page = registry.read_file(name, found.version, CARD_FILE)
    except FileNotFoundError:
        raise CardNotFoundError(f"{found.ref} has no model card") from None
    return HTMLResponse(page.decode())


@router.get("/{name}/example", responses=_NOT_FOUND)
async def get_model_example(
    name: str,
    _caller: ReadAccess,
    deployment: DeploymentDep,
    version: str | None = None,
    index: int = Query(default=0, ge=0, description="Which reference row to return."),
) -> dict[str, Any]:
    """A real record from the version's reference data, ready to send to ``/predict``."""
    predictor = await run_in_threadpool(deployment.get, name, version)
    if index >= len(predictor.examples):
        raise InvalidRequestError(
            f"there are {len(predictor.examples)} example rows",
            [Problem("index", f"must be below {len(predictor.examples)}")],
        )
    return {
        "model": predictor.name,
        "version": predictor.version.version,
        "record": predictor.example(index),
    }
