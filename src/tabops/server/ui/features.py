"""The features page: an entity's stored online features, and the models served by its view.

The lookup is ``GET /v1/features/{view}/{entity_id}`` itself (the API's route function, over
the app's feature store): the same values, times and 404 messages. Each model whose
production version reads the view gets a button posting the entity id to its predict page,
which predicts through the serving core with the user's context (predict scope, logged).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from tabops.errors import EntityNotFoundError, FeatureViewNotFoundError, TabopsError
from tabops.feature_store.base import ViewSummary
from tabops.registry.versions import MANIFEST, ModelRegistry
from tabops.security.keys import PREDICT, READ
from tabops.server.deps import get_deployment, get_feature_store
from tabops.server.routers.features import get_entity_features
from tabops.server.ui.render import UiUser, UiUserDep, render
from tabops.serving.deployment import Deployment

router = APIRouter()

ENTITY_FIELD = "entity_id"
# The view a version reads, by (model, version), per registry: a version never changes.
_VIEW_OF: WeakKeyDictionary[ModelRegistry, dict[tuple[str, int], str | None]] = WeakKeyDictionary()


@dataclass(frozen=True)
class ViewModel:
    """A model whose production version is served by a view's entity."""

    name: str
    version: int
    may_predict: bool
    predict_url: str


@router.get("/features", response_class=HTMLResponse)
async def show_features(
    request: Request,
    user: UiUserDep,
    view: str | None = None,
    entity_id: str | None = None,
) -> HTMLResponse:
    """The lookup form; with ``view`` and ``entity_id``, the entity's features and models."""
    store = get_feature_store(request)
    views = await run_in_threadpool(store.views)
    if not views:
        return render(request, "features_empty.html.j2", {}, user=user)
    chosen = _chosen_view(views, view)
    wanted = (entity_id or "").strip()
    values: dict[str, Any] = {
        "views": views,
        "view": chosen,
        "entity_id": wanted,
        "entity_problem": None,
        "answer": None,
        "models": [],
        "now": datetime.now(UTC),
    }
    status_code = 200
    if wanted:
        try:
            answer = await get_entity_features(chosen.view, wanted, user.caller, store)
        except (EntityNotFoundError, FeatureViewNotFoundError) as exc:
            status_code = 404
            values["entity_problem"] = next(
                (p.problem for p in exc.problems if p.field == ENTITY_FIELD), exc.message
            )
        else:
            values["answer"] = answer
            values["freshness"] = _age(answer["materialized_at"])
            values["models"] = await run_in_threadpool(
                models_reading, get_deployment(request), chosen.view, user, _predict_base(request)
            )
    return render(request, "features.html.j2", values, user=user, status_code=status_code)


def models_reading(
    deployment: Deployment, view: str, user: UiUser, predict_base: str
) -> list[ViewModel]:
    """The models ``user`` may read whose production version reads ``view``."""
    known = _VIEW_OF.setdefault(deployment.registry, {})
    found = []
    for served in deployment.served():
        if served.version is None or not user.may(READ, served.name):
            continue
        key = (served.name, served.version)
        if key not in known:
            known[key] = _view_read_by(deployment, *key)
        if known[key] != view:
            continue
        found.append(
            ViewModel(
                name=served.name,
                version=served.version,
                may_predict=user.may(PREDICT, served.name),
                predict_url=predict_base.replace("{name}", quote(served.name, safe="")),
            )
        )
    return found


def _view_read_by(deployment: Deployment, name: str, version: int) -> str | None:
    """The online store view a version reads (its manifest's ``features``), if any."""
    try:
        document = json.loads(deployment.registry.read_file(name, version, MANIFEST))
    except (TabopsError, OSError, ValueError):
        return None  # the model's own pages say why its version cannot be read
    needs = document.get("features") if isinstance(document, dict) else None
    view = needs.get("view") if isinstance(needs, dict) else None
    return view if isinstance(view, str) else None


def _chosen_view(views: list[ViewSummary], name: str | None) -> ViewSummary:
    """The view asked for, else the first (a view the store lacks is answered as the API does)."""
    for summary in views:
        if summary.view == name:
            return summary
    if name:
        return ViewSummary(view=name, entity="entity", features=[], entities=0, updated=_EPOCH)
    return views[0]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _predict_base(request: Request) -> str:
    """The predict page's path with a ``{name}`` placeholder, relative to this server."""
    path: str = request.url_for("show_predict_form", name="NAME").path
    return path.replace("/NAME/", "/{name}/")


def _age(moment: datetime | None) -> str | None:
    """How long ago ``moment`` was, in words (seconds to days)."""
    if moment is None:
        return None
    seconds = max((datetime.now(UTC) - moment).total_seconds(), 0.0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return f"{int(seconds)} seconds ago"
