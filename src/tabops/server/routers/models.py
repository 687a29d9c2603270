"""Model endpoints: what is registered, a version's manifest, a real example record."""

from __future__ import annotations

from random import randrange
from typing import Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from tabops.errors import CardNotFoundError, InvalidRequestError, ModelNotFoundError, Problem
from tabops.model.files import CARD_FILE
from tabops.names import ALIAS_RULE, is_alias
from tabops.server.aliases import promote_version, roll_back_alias
from tabops.server.deps import (
    AdminAccess,
    AuditDep,
    ContextDep,
    DeploymentDep,
    ReadAccess,
    RegistryDep,
)
from tabops.server.schemas import (
    AliasRequest,
    AliasResponse,
    ErrorResponse,
    ModelSummaryResponse,
    ModelVersionResponse,
    VersionSummaryResponse,
)

router = APIRouter(prefix="/v1/models", tags=["models"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}
_MOVES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse},
    409: {"model": ErrorResponse, "description": "No earlier version, or the alias kept moving"},
    422: {"model": ErrorResponse, "description": "An invalid alias name or body"},
}


def _checked_alias(alias: str) -> str:
    """The alias from the path, refused with a 422 naming it when no alias may be so named."""
    if not is_alias(alias):
        raise InvalidRequestError(
            f"invalid alias {alias!r}: {ALIAS_RULE}", [Problem("alias", ALIAS_RULE)]
        )
    return alias


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
    random: bool = Query(
        default=False,
        description="Draw the row at random from the version's reference rows (``index`` "
        "is then ignored): a different realistic record on each call.",
    ),
) -> dict[str, Any]:
    """A real record from the version's reference data, ready to send to ``/predict``.

    By default the reference row at ``index`` (the first one), so the answer is the same on
    every call; with ``random=true``, a row drawn at random from the reference rows.
    """
    predictor = await run_in_threadpool(deployment.get, name, version)
    rows = len(predictor.examples)
    if random and rows:
        index = randrange(rows)
    if index >= rows:
        problem = Problem("random", "the version has no reference rows")
        raise InvalidRequestError(
            f"there are {rows} example rows",
            [problem if random else Problem("index", f"must be below {rows}")],
        )
    return {
        "model": predictor.name,
        "version": predictor.version.version,
        "record": predictor.example(index),
    }


@router.put("/{name}/aliases/{alias}", response_model=AliasResponse, responses=_MOVES)
async def set_model_alias(
    name: str,
    alias: str,
    body: AliasRequest,
    _caller: AdminAccess,
    context: ContextDep,
    deployment: DeploymentDep,
    audit: AuditDep,
) -> dict[str, Any]:
    """Point an alias (``production``, ``staging``, any name) at a version (admin).

    The move is audited, kept in the alias's history for a rollback, and served by this
    server from its next request (other processes re-read aliases within seconds).
    """
    previous = await promote_version(
        deployment, audit, context, name, _checked_alias(alias), body.version
    )
    return {"name": name, "alias": alias, "version": body.version, "previous": previous}


@router.post("/{name}/aliases/{alias}/rollback", response_model=AliasResponse, responses=_NOT_FOUND)
async def roll_back_model_alias(
    name: str,
    alias: str,
    _caller: AdminAccess,
    context: ContextDep,
    deployment: DeploymentDep,
    audit: AuditDep,
) -> dict[str, Any]:
    """Point an alias back at the version it pointed at before (admin); 409 with no history."""
    current, target = await roll_back_alias(deployment, audit, context, name, _checked_alias(alias))
    return {"name": name, "alias": alias, "version": target, "previous": current}
