"""The predict page: a form generated from a version's feature spec, answered by the serving core.

A posted form becomes the JSON body (or, for a model served by entity, the overrides) that
``POST /v1/models/{name}/predict`` (or the entity prediction) takes, and goes through the
same ``PredictEndpoints`` with the UI user's request context: authorized, rate-limited and
logged as an API call. A refusal is shown beside the field it names, the form keeping what
the user typed. The form works without JavaScript; ``predict.js`` only refills it with a
random example in place.
"""

from __future__ import annotations

import logging
import random
from typing import Any
from urllib.parse import urlencode
from weakref import WeakKeyDictionary

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from tabops.errors import (
    ArtifactIntegrityError,
    FeatureStoreError,
    InvalidInputError,
    InvalidRequestError,
    Problem,
    TabopsError,
)
from tabops.model.files import REFERENCE_STATS_FILE
from tabops.model.predictor import Predictor
from tabops.monitoring.reference import load_reference, reference_cache_dir
from tabops.registry.versions import DEFAULT_ALIAS
from tabops.security.keys import READ
from tabops.server.deps import get_core, get_deployment, get_endpoints, get_settings_dependency
from tabops.server.endpoints import Target
from tabops.server.errors import status_of
from tabops.server.routers.models import get_model_example
from tabops.server.ui.predict_form import (
    build_fields,
    problems_by_field,
    range_hints,
    record_from_form,
)
from tabops.server.ui.render import UiUser, UiUserDep, checked_form, render

logger = logging.getLogger("tabops.server")
router = APIRouter()

ENTITY_FIELD = "entity_id"
_BAR_WIDTH = 320
# Range hints per loaded version, computed once: a version never changes, and the entry
# goes with the predictor when the deployment lets it go.
_HINTS: WeakKeyDictionary[Predictor, dict[str, str]] = WeakKeyDictionary()
# Refusals shown on the form itself; any other error is an error page (server/ui/render).
_FORM_ERRORS = (InvalidInputError, InvalidRequestError, FeatureStoreError)


@router.get("/models/{name}/predict", response_class=HTMLResponse)
async def show_predict_form(
    name: str,
    request: Request,
    user: UiUserDep,
    version: str | None = None,
    example: str | None = None,
) -> HTMLResponse:
    """The form for a version (production unless ``version``), filled from an example row.

    ``example=random`` fills it from a random example row instead of the first.
    """
    ref = version or None
    predictor = await get_core(request).resolve(user.context, name, ref)
    values: dict[str, Any] = {}
    if not is_entity_model(predictor) and len(predictor.examples):
        index = random.randrange(len(predictor.examples)) if example == "random" else 0
        values = predictor.example(index)
    return await _page(request, user, predictor, ref, values)


@router.get("/models/{name}/predict/example")
async def get_random_example(
    name: str, request: Request, user: UiUserDep, version: str | None = None
) -> dict[str, Any]:
    """``GET /v1/models/{name}/example?random=true``, for the page's session.

    ``predict.js`` refills the form from it: the API authenticates keys sent in headers,
    a page's script has only the session's cookie.
    """
    get_core(request).authorize(user.context, name, READ)
    deployment = get_deployment(request)
    return await get_model_example(
        name, user.caller, deployment, version=version or None, index=0, random=True
    )


@router.post("/models/{name}/predict", response_class=HTMLResponse)
async def submit_predict_form(name: str, request: Request, user: UiUserDep) -> HTMLResponse:
    """Predict the posted form through the serving core; the answer or the refusals shown."""
    form = await checked_form(request, user)
    posted = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    ref = posted.get("version") or None
    endpoints = get_endpoints(request)
    predictor = await endpoints.core.resolve(user.context, name, ref)
    # The version resolved now answers, even if an alias moves meanwhile.
    number = str(predictor.version.version)
    spec = predictor.spec
    values = {column.name: posted.get(f"feature:{column.name}") for column in spec.features}
    is_entity = is_entity_model(predictor)
    entity_id = posted.get(ENTITY_FIELD, "").strip()
    try:
        if is_entity:
            if not entity_id:
                raise InvalidInputError(
                    "an entity id is needed", [Problem(ENTITY_FIELD, "field required")]
                )
            overrides = record_from_form(spec, posted, overrides=True)
            target = Target("entity", name, number, entity_id)
            answer = await endpoints.answer(user.context, target, b"", overrides)
        else:
            body = orjson.dumps(record_from_form(spec, posted))
            answer = await endpoints.answer(user.context, Target("predict", name, number), body, {})
    except _FORM_ERRORS as exc:
        return await _page(request, user, predictor, ref, values, entity_id=entity_id, error=exc)
    assert isinstance(answer, bytes)  # one record: never streamed
    result = orjson.loads(answer)
    return await _page(request, user, predictor, ref, values, entity_id=entity_id, result=result)


def is_entity_model(predictor: Predictor) -> bool:
    """Whether the version is served by entity id, from the online store's features."""
    return predictor.version.manifest.features is not None


async def _page(
    request: Request,
    user: UiUser,
    predictor: Predictor,
    ref: str | None,
    values: dict[str, Any],
    *,
    entity_id: str = "",
    result: dict[str, Any] | None = None,
    error: TabopsError | None = None,
) -> HTMLResponse:
    """The page for a version: its form with ``values``, and an answer or a refusal."""
    name = predictor.name
    registry = get_core(request).served_deployment().registry
    numbers, aliases = await run_in_threadpool(
        lambda: (registry.list_versions(name), registry.aliases(name))
    )
    hints = await _hints(request, predictor)
    is_entity = is_entity_model(predictor)
    names = [column.name for column in predictor.spec.features]
    problems: dict[str, str] = {}
    others: list[str] = []
    status_code = 200
    if error is not None:
        status_code = status_of(error)[0]
        problems, others = problems_by_field(error.problems, [*names, ENTITY_FIELD])
    fields = build_fields(
        predictor.spec, values, hints=hints, problems=problems, overrides=is_entity
    )
    version = predictor.version.version
    selected = ref or DEFAULT_ALIAS
    page = {
        "model": name,
        "nav_model": name,
        "version": version,
        "version_aliases": sorted(alias for alias, v in aliases.items() if v == version),
        "ref": ref or "",
        "choices": _version_choices(numbers, aliases, selected),
        "fields": fields,
        "is_entity": is_entity,
        "entity_label": _entity_label(predictor),
        "form_action": _link(request, "show_predict_form", name),
        "entity_id": entity_id,
        "entity_problem": problems.get(ENTITY_FIELD) if is_entity else None,
        "error": error.message if error is not None else None,
        "other_problems": others,
        "result": _result(predictor, result) if result is not None else None,
        "csrf": user.csrf,
        "random_url": _link(request, "show_predict_form", name, version=ref, example="random"),
        "example_url": _link(request, "get_random_example", name, version=ref),
    }
    return render(request, "predict.html.j2", page, user=user, status_code=status_code)


def _entity_label(predictor: Predictor) -> str:
    needs = predictor.version.manifest.features
    return f"Entity id ({needs.entity})" if needs is not None else "Entity id"


def _link(request: Request, route: str, name: str, **query: str | None) -> str:
    """The path (and query) of one of this page's routes: relative to the server it is on."""
    path = request.url_for(route, name=name).path
    present = {key: value for key, value in query.items() if value}
    return f"{path}?{urlencode(present)}" if present else path


def _version_choices(
    numbers: list[int], aliases: dict[str, int], selected: str
) -> list[dict[str, Any]]:
    """The version selector's options: aliases first (with their version), then numbers."""
    choices = [
        {"value": alias, "text": f"{alias} (version {number})", "selected": alias == selected}
        for alias, number in sorted(aliases.items())
    ]
    choices += [
        {"value": str(n), "text": f"version {n}", "selected": str(n) == selected}
        for n in reversed(numbers)
    ]
    if not any(choice["selected"] for choice in choices):  # a tag: shown as asked
        choices.insert(0, {"value": selected, "text": selected, "selected": True})
    return choices


def _result(predictor: Predictor, answer: dict[str, Any]) -> dict[str, Any]:
    """The answer with what the page draws: the bar's and the threshold's positions."""
    probability = float(answer["probability"])
    threshold = float(answer["threshold"])
    return {
        **answer,
        "bar_width": _BAR_WIDTH,
        "fill": round(min(max(probability, 0.0), 1.0) * _BAR_WIDTH, 2),
        "mark": round(min(max(threshold, 0.0), 1.0) * _BAR_WIDTH, 2),
        "percent": f"{probability * 100:.1f}%",
        "is_positive": answer["class_name"] == predictor.positive[1],
    }


async def _hints(request: Request, predictor: Predictor) -> dict[str, str]:
    """The range hints of a version, from its reference statistics once, else its spec."""
    hints = _HINTS.get(predictor)
    if hints is None:
        hints = await run_in_threadpool(_read_hints, request, predictor)
        _HINTS[predictor] = hints
    return hints


def _read_hints(request: Request, predictor: Predictor) -> dict[str, str]:
    version = predictor.version
    stats = None
    # Only a stored file is read: building statistics from the sample is monitoring's work.
    if REFERENCE_STATS_FILE in version.manifest.files:
        registry = get_core(request).served_deployment().registry
        home = get_settings_dependency(request).home
        try:
            stats = load_reference(
                registry, version.name, version.version, reference_cache_dir(home)
            )
        except ArtifactIntegrityError as exc:
            logger.warning("range hints of %s from its spec: %s", version.ref, exc.message)
    return range_hints(predictor.spec, stats)
