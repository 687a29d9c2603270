"""What the navigation of every page shows: the model's pages, and the "Features" link."""

from __future__ import annotations

import time
from urllib.parse import quote

from fastapi import FastAPI, Request
from starlette.routing import Match

UI_PREFIX = "/ui"
FEATURE_NAV_SECONDS = 30.0
"""How long the nav's "Features" link trusts its last look at the online store's views."""
_MODEL_PAGES = (
    ("Model", ""),
    ("Predict", "/predict"),
    ("Batch", "/batch"),
    ("Monitoring", "/monitoring"),
)


def has_feature_views(request: Request) -> bool:
    """Whether the online store has views (checked again after ``FEATURE_NAV_SECONDS``)."""
    now = time.monotonic()
    checked: tuple[float, bool] | None = getattr(request.app.state, "ui_feature_views", None)
    if checked is None or now - checked[0] > FEATURE_NAV_SECONDS:
        store = getattr(request.app.state, "feature_store", None)
        try:
            has_views = bool(store is not None and store.views())
        except Exception:  # a store that cannot answer hides the link, never the page
            has_views = False
        checked = (now, has_views)
        request.app.state.ui_feature_views = checked
    return checked[1]


def model_pages(request: Request, name: str) -> list[tuple[str, str]]:
    """The model's pages that exist in this app, as (label, path)."""
    available: tuple[str, ...] | None = getattr(request.app.state, "ui_model_pages", None)
    if available is None:
        available = find_model_pages(request.app)
    root = request.scope.get("root_path", "")
    base = f"{root}/ui/models/{quote(name, safe='')}"
    return [(label, base + suffix) for label, suffix in _MODEL_PAGES if suffix in available]


def find_model_pages(app: FastAPI) -> tuple[str, ...]:
    """The suffixes of the model pages ``app`` has, remembered in its state."""
    available = tuple(
        suffix
        for _label, suffix in _MODEL_PAGES
        if _has_page(app, f"{UI_PREFIX}/models/model{suffix}")
    )
    app.state.ui_model_pages = available
    return available


def _has_page(app: FastAPI, path: str) -> bool:
    """Whether a GET of ``path`` reaches a route of the app."""
    probe = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    return any(route.matches(dict(probe))[0] == Match.FULL for route in app.router.routes)
