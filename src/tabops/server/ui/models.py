"""The model page: versions, aliases, a leaderboard, the card, and moving aliases (admin).

Promoting a version and rolling an alias back each take two steps: a page saying what will
change (``production: 3 -> 5``), then its form, posted with the session's CSRF token. The
move itself is ``server/aliases.py``'s, which every other way of moving an alias uses too:
the registry's rules, the audit log, and this process serving the new target at once. A
confirmation reviewed before someone else moved the alias is refused (409): review again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from tabops.errors import ModelNotFoundError, Problem, RegistryError
from tabops.registry.tags import VersionTags
from tabops.registry.versions import DEFAULT_ALIAS, ModelRegistry
from tabops.server.aliases import promote_version, roll_back_alias
from tabops.server.deps import get_audit, get_core, get_deployment
from tabops.server.routers.models import get_model_card
from tabops.server.ui.form_body import (
    alias_field,
    checked_alias,
    number_field,
    optional_number_field,
)
from tabops.server.ui.render import UiUserDep, checked_form, flash, render, see_other
from tabops.server.ui.version_facts import (
    KEY_METRICS,
    TABLE_METRICS,
    VersionFacts,
    VersionFactsCache,
)
from tabops.serving.hooks import ADMIN, READ

router = APIRouter()

_NO_MODEL = Problem("name", "no model of that name is registered")


@dataclass(frozen=True)
class AliasRow:
    """An alias of the model: where it points, and where a rollback would take it."""

    alias: str
    version: int
    rollback_to: int | None


@dataclass(frozen=True)
class VersionRow:
    """A row of the versions table."""

    facts: VersionFacts
    aliases: list[str]
    tags: list[str]
    created: str


@router.get("/models/{name}", response_class=HTMLResponse)
async def show_model(
    name: str,
    request: Request,
    user: UiUserDep,
    version: Annotated[str | None, Query(description="Version whose leaderboard to show.")] = None,
) -> HTMLResponse:
    """The model's versions (newest first), aliases, and one version's leaderboard."""
    get_core(request).authorize(user.context, name, READ)
    registry = get_deployment(request).registry
    values = await run_in_threadpool(
        _gather_model, registry, _facts_cache(request, registry), name, version or None
    )
    values["is_admin"] = user.may(ADMIN, name)
    return render(request, "model.html.j2", values, user=user)


@router.get("/models/{name}/versions/{version}/card", response_class=HTMLResponse)
async def show_model_card(
    name: str, version: str, request: Request, user: UiUserDep
) -> HTMLResponse:
    """The version's model card, as ``GET /v1/models/{name}/versions/{version}/card`` gives it.

    Served under ``/ui`` too, because a browser's login session is not an API key.
    """
    get_core(request).authorize(user.context, name, READ)
    registry = get_deployment(request).registry
    return await run_in_threadpool(get_model_card, name, version, user.caller, registry)


@router.get("/models/{name}/promote", response_class=HTMLResponse)
async def review_promotion(
    name: str,
    request: Request,
    user: UiUserDep,
    version: Annotated[int, Query(ge=1, description="The version to point the alias at.")],
    alias: Annotated[str, Query(description="The alias to move.")] = DEFAULT_ALIAS,
) -> HTMLResponse:
    """What pointing ``alias`` at ``version`` would change, with the form that does it."""
    get_core(request).authorize(user.context, name, ADMIN)
    registry = get_deployment(request).registry
    cache = _facts_cache(request, registry)
    values = await run_in_threadpool(_review_promotion, registry, cache, name, alias, version)
    return render(request, "model_confirm.html.j2", values, user=user)


@router.post("/models/{name}/promote", response_class=RedirectResponse)
async def promote_model(name: str, request: Request, user: UiUserDep) -> RedirectResponse:
    """Point the alias at the version, as reviewed; back to the model page with what moved."""
    get_core(request).authorize(user.context, name, ADMIN)
    form = await checked_form(request, user)
    alias = alias_field(form)
    version = number_field(form, "version")
    expected = optional_number_field(form, "current")
    deployment = get_deployment(request)
    current = (await run_in_threadpool(deployment.registry.aliases, name)).get(alias)
    _check_unchanged(name, alias, expected, current)
    previous = await promote_version(
        deployment, get_audit(request), user.context, name, alias, version
    )
    was = "new alias" if previous is None else str(previous)
    flash(request, f"{name}@{alias}: {was} → {version}", "ok")
    return see_other(request, _model_path(name))


@router.get("/models/{name}/rollback", response_class=HTMLResponse)
async def review_rollback(
    name: str,
    request: Request,
    user: UiUserDep,
    alias: Annotated[str, Query(description="The alias to move back.")] = DEFAULT_ALIAS,
) -> HTMLResponse:
    """Where rolling ``alias`` back would take it, with the form that does it."""
    get_core(request).authorize(user.context, name, ADMIN)
    registry = get_deployment(request).registry
    cache = _facts_cache(request, registry)
    values = await run_in_threadpool(_review_rollback, registry, cache, name, alias)
    return render(request, "model_confirm.html.j2", values, user=user)


@router.post("/models/{name}/rollback", response_class=RedirectResponse)
async def roll_back_model(name: str, request: Request, user: UiUserDep) -> RedirectResponse:
    """Point the alias back at its previous version, as reviewed."""
    get_core(request).authorize(user.context, name, ADMIN)
    form = await checked_form(request, user)
    alias = alias_field(form)
    expected = number_field(form, "current")
    deployment = get_deployment(request)
    registry = deployment.registry
    current = (await run_in_threadpool(registry.aliases, name)).get(alias)
    _check_unchanged(name, alias, expected, current)
    moved_from, moved_to = await roll_back_alias(
        deployment, get_audit(request), user.context, name, alias
    )
    flash(request, f"{name}@{alias} rolled back: {moved_from} → {moved_to}", "ok")
    return see_other(request, _model_path(name))


# Reading the registry (on a worker thread) -------------------------------------------------


def _facts_cache(request: Request, registry: ModelRegistry) -> VersionFactsCache:
    """The app's cache of version facts, made on first use."""
    cache: VersionFactsCache | None = getattr(request.app.state, "ui_version_facts", None)
    if cache is None or cache.registry is not registry:
        cache = VersionFactsCache(registry)
        request.app.state.ui_version_facts = cache
    return cache


def _gather_model(
    registry: ModelRegistry, cache: VersionFactsCache, name: str, ref: str | None
) -> dict[str, Any]:
    """Everything the model page shows, from manifests' facts and the alias records."""
    numbers = registry.list_versions(name)
    if not numbers:
        raise ModelNotFoundError(f"model {name!r} not found", [_NO_MODEL])
    aliases = registry.aliases(name)
    tags = VersionTags(registry.store).of(name)
    rows = []
    for number in reversed(numbers):
        facts = cache.get(name, number)
        held = sorted(alias for alias, target in aliases.items() if target == number)
        rows.append(VersionRow(facts, held, tags.get(number, []), _short_time(facts.created)))
    if ref is not None:
        chosen = registry.resolve(name, ref)
    else:
        chosen = aliases.get(DEFAULT_ALIAS, numbers[-1])
    alias_rows = []
    for alias in sorted(aliases, key=lambda a: (a != DEFAULT_ALIAS, a)):
        history = registry.alias_history(name, alias)
        alias_rows.append(AliasRow(alias, aliases[alias], history[-1] if history else None))
    shown_metrics = [m for m in TABLE_METRICS if any(m in row.facts.metrics for row in rows)]
    return {
        "nav_model": name,
        "name": name,
        "versions": rows,
        "aliases": alias_rows,
        "alias_names": sorted(aliases),
        "default_alias": DEFAULT_ALIAS,
        "metric_names": shown_metrics,
        "chosen": cache.get(name, chosen),
        "chosen_aliases": sorted(a for a, target in aliases.items() if target == chosen),
    }


def _review_promotion(
    registry: ModelRegistry, cache: VersionFactsCache, name: str, alias: str, version: int
) -> dict[str, Any]:
    checked_alias(alias)
    registry.resolve(name, version)  # the not-found errors, before anything is offered
    current = registry.aliases(name).get(alias)
    return _review(cache, name, "promote", alias, current, version)


def _review_rollback(
    registry: ModelRegistry, cache: VersionFactsCache, name: str, alias: str
) -> dict[str, Any]:
    checked_alias(alias)
    history = registry.alias_history(name, alias)
    current = registry.aliases(name).get(alias)
    if current is None or not history:
        raise RegistryError(
            f"{name}@{alias} has no earlier version to roll back to",
            [Problem("alias", "it has pointed at no other version")],
        )
    return _review(cache, name, "rollback", alias, current, history[-1])


def _review(
    cache: VersionFactsCache, name: str, action: str, alias: str, current: int | None, target: int
) -> dict[str, Any]:
    """The confirmation page's values: the move, and both versions' key metrics."""
    before = cache.get(name, current) if current is not None else None
    after = cache.get(name, target)
    metrics = [
        (metric, before.metrics.get(metric) if before else None, after.metrics.get(metric))
        for metric in KEY_METRICS
        if metric in after.metrics or (before is not None and metric in before.metrics)
    ]
    return {
        "nav_model": name,
        "name": name,
        "action": action,
        "alias": alias,
        "from_version": current,
        "to_version": target,
        "before": before,
        "after": after,
        "metrics": metrics,
        "is_unchanged": current == target,
    }


# Reading the posted forms --------------------------------------------------------------------


def _check_unchanged(name: str, alias: str, expected: int | None, current: int | None) -> None:
    """Refuse a confirmation made while the alias pointed elsewhere than it does now."""
    if expected != current:
        then = "did not exist" if expected is None else f"pointed at {expected}"
        now = "no longer exists" if current is None else f"now points at {current}"
        raise RegistryError(
            f"{name}@{alias} {now}; it {then} when the change was reviewed: review it again",
            [Problem("current", "the alias has moved since")],
        )


def _model_path(name: str) -> str:
    return f"/ui/models/{quote(name, safe='')}"


def _short_time(created: str | None) -> str:
    """``2026-11-28 21:51 UTC`` from an ISO time stamp (as given when it does not parse)."""
    if created is None:
        return ""
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        return created
    zone = moment.tzname() or ""
    return moment.strftime("%Y-%m-%d %H:%M") + (f" {zone}" if zone else "")
