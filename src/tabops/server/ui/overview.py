"""The UI's front pages: the overview of every model, logging in with an API key, logging out."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from tabops.errors import NotAuthenticatedError, NotAuthorizedError, Problem, TabopsError
from tabops.monitoring.volume import count_logged_since
from tabops.monitoring.watch import Watch
from tabops.security.access import AccessPolicy, audit_entry
from tabops.server.deps import (
    get_deployment,
    get_log_reader,
    get_policy,
    get_watch,
)
from tabops.server.ui.render import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    UiUser,
    UiUserDep,
    checked_form,
    cookie_path,
    flash,
    get_sessions,
    read_form,
    render,
    see_other,
    set_ui_cookie,
    ui_context,
)
from tabops.serving.deployment import Deployment
from tabops.serving.hooks import PREDICT, READ

router = APIRouter()
"""The login pages; ``show_overview`` answers ``/ui`` itself (``site.py``: a router
included without a prefix may not hold an empty path)."""

TRAFFIC_HOURS = 24
"""The window of the overview's traffic badge."""
_REFUSED_LOGIN = "This API key is not valid: it is unknown, revoked, expired or mistyped."
_STATUS_BADGES = {"loaded": "ok", "not loaded": "info", "refused": "alert", "unavailable": "warn"}


@dataclass
class ModelOverview:
    """What the overview shows of one model."""

    name: str
    aliases: list[tuple[str, int]]
    version: int | None
    status: str
    status_badge: str
    runtime: str | None
    detail: str | None
    created: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    traffic: int = 0
    firing: int = 0
    may_predict: bool = False


async def show_overview(request: Request, user: UiUserDep) -> HTMLResponse:
    """Every model the user may use: served versions, status, traffic and alerts."""
    models = await run_in_threadpool(
        gather_overview,
        get_deployment(request),
        get_watch(request),
        get_log_reader(request).root,
        user,
    )
    return render(request, "overview.html.j2", {"models": models}, user=user)


def gather_overview(
    deployment: Deployment, watch: Watch, log_root: Path, user: UiUser
) -> list[ModelOverview]:
    """The overview of every model ``user`` may read, cheap enough for each page view.

    Statuses come from the deployment (nothing is loaded), traffic from the prediction
    log's file names and footers, alerts from the alert store.
    """
    registry = deployment.registry
    since = datetime.now(UTC) - timedelta(hours=TRAFFIC_HOURS)
    served = {model.name: model for model in deployment.served()}
    overview = []
    for name in registry.list_models():
        if not user.may(READ, name):
            continue
        status = served.get(name)
        aliases = registry.aliases(name)
        version = status.version if status is not None else aliases.get("production")
        created, metrics = None, {}
        if version is not None:
            try:
                summary = registry.summarize_version(name, version)
                created, metrics = summary.created, summary.metrics
            except TabopsError:
                pass  # the status says why the version cannot be read
        state = status.status if status is not None else "unavailable"
        overview.append(
            ModelOverview(
                name=name,
                aliases=sorted(aliases.items(), key=lambda item: (item[0] != "production", item)),
                version=version,
                status=state,
                status_badge=_STATUS_BADGES.get(state, "info"),
                runtime=status.runtime if status is not None else None,
                detail=status.detail if status is not None else None,
                created=created,
                metrics={k: metrics[k] for k in ("roc_auc", "pr_auc", "f1") if k in metrics},
                traffic=count_logged_since(log_root, name, since),
                firing=sum(1 for alert in watch.alerts.states(name) if alert.state == "firing"),
                may_predict=user.may(PREDICT, name),
            )
        )
    return overview


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path under ``/ui`` only (never another site)."""
    if not target or len(target) > 2000:
        return "/ui"
    if any(ord(char) < 0x20 or char == "\\" for char in target):
        return "/ui"
    parts = urlsplit(target)
    path = parts.path
    if parts.scheme or parts.netloc or not (path == "/ui" or path.startswith("/ui/")):
        return "/ui"
    if "//" in path or any(segment in (".", "..") for segment in path.split("/")):
        return "/ui"
    return path + (f"?{parts.query}" if parts.query else "")


@router.get("/login", response_model=None)
async def show_login(
    request: Request, next_path: Annotated[str | None, Query(alias="next")] = None
) -> HTMLResponse | RedirectResponse:
    """The login form, taking an API key; straight on when no login is needed."""
    policy = get_policy(request)
    target = safe_next(next_path)
    if await run_in_threadpool(policy.state) != "keys":
        return see_other(request, target)
    return _login_page(request, target)


def _login_page(
    request: Request, target: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    values = {"next": target, "error": error}
    response = render(request, "login.html.j2", values, user=None, status_code=status_code)
    if error is not None:
        response.headers["www-authenticate"] = 'Bearer realm="tabops"'
    return response


@router.post("/login", response_model=None)
async def log_in(request: Request) -> HTMLResponse | RedirectResponse:
    """Start a session for the API key sent, then go on to ``next``."""
    form = await read_form(request)
    target = safe_next(_text(form.get("next")))
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    sent = _text(form.get("csrf"))
    if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        raise NotAuthorizedError(
            "the form is out of date or did not come from this site; reload the page and retry",
            [Problem("csrf", "missing or not this browser's token")],
        )
    policy = get_policy(request)
    if await run_in_threadpool(policy.state) != "keys":
        return see_other(request, target)
    context = ui_context(request)
    key = _text(form.get("key")).strip()
    try:
        caller = await run_in_threadpool(policy.authenticate, key or None)
    except NotAuthenticatedError:
        _audit(policy, context, "not_authenticated", 401)
        return _login_page(request, target, _REFUSED_LOGIN, status_code=401)
    assert caller.key_id is not None  # a key's caller, as the state is "keys"
    session_id, session = await run_in_threadpool(get_sessions(request).start, caller.key_id)
    context.caller = caller
    _audit(policy, context, "ok", 303)
    response = see_other(request, target)
    lifetime = int((session.expires - session.created).total_seconds())
    set_ui_cookie(request, response, SESSION_COOKIE, session_id, max_age=lifetime)
    return response


@router.post("/logout")
async def log_out(request: Request, user: UiUserDep) -> RedirectResponse:
    """End the session (the form carries the session's CSRF token)."""
    await checked_form(request, user)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        await run_in_threadpool(get_sessions(request).end, session_id)
    response = see_other(request, "/ui/login" if user.has_session else "/ui")
    response.delete_cookie(SESSION_COOKIE, path=cookie_path(request))
    flash(response, "You are logged out.", "ok", request=request)
    return response


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _audit(policy: AccessPolicy, context: Any, outcome: str, status: int) -> None:
    if policy.audit is not None:
        policy.audit.record_later(audit_entry(context, None, outcome, status))
