"""What every page of the web UI shares: who is using it, templates, checked forms, flashes.

- ``UiUserDep``: the page's user. With keys on the server, a login session (cookie
  ``tabops_session``) stands for a key; without one the page answers 303 to the login.
  Without keys (an open server, or auth off) everyone is ``ANONYMOUS`` and needs no login.
  Each UI request is charged once to its key's rate, as one API request would be.
- ``render``: a template of ``templates/`` as an HTML answer with the UI's
  Content-Security-Policy (scripts and styles from ``/ui/static`` only: no inline script or
  ``style`` attribute; images from here or ``data:``).
- ``checked_form`` (``form_body.py``): a POST form's fields, read within ``MAX_FORM_BYTES``,
  once its ``csrf`` field matches the user's token (403 otherwise).
- ``flash`` and ``see_other`` (``cookies.py``): a message shown on the next page.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from tabops.errors import NotAuthorizedError, RateLimitedError
from tabops.security.access import ANONYMOUS, AccessPolicy, AuthState, Caller, audit_entry
from tabops.security.keys import READ
from tabops.server.deps import get_policy, request_context
from tabops.server.ui.cookies import (
    CSRF_COOKIE,
    FLASH_COOKIE,
    SESSION_COOKIE,
    cookie_flashes,
    cookie_path,
    flash,
    see_other,
    set_ui_cookie,
)
from tabops.server.ui.form_body import MAX_FORM_BYTES, checked_form, read_form
from tabops.server.ui.navigation import UI_PREFIX, has_feature_views, model_pages
from tabops.server.ui.sessions import SessionStore, new_secret
from tabops.serving.context import RequestContext

__all__ = [
    "CSRF_COOKIE",
    "MAX_FORM_BYTES",
    "SESSION_COOKIE",
    "UiUser",
    "UiUserDep",
    "checked_form",
    "compile_templates",
    "cookie_path",
    "flash",
    "read_form",
    "render",
    "see_other",
    "set_ui_cookie",
    "ui_context",
    "ui_user",
]


UI_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_TEMPLATES = Path(str(files("tabops.server.ui") / "templates"))
STATIC_FOLDER = Path(str(files("tabops.server.ui") / "static"))

_ENV = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)


class LoginRequired(Exception):  # a redirect, not an error of the tree
    """The page needs a session: answered 303 to ``/ui/login?next=<path>``."""

    def __init__(self, next_path: str, *, is_ended: bool = False) -> None:
        super().__init__(next_path)
        self.next_path = next_path
        self.is_ended = is_ended


@dataclass
class UiUser:
    """Who is using a page, as the API would see them.

    Attributes:
        caller: the session's key, or ``ANONYMOUS`` on a server without keys.
        context: the request's context with ``caller`` set: pass it to the serving core.
        csrf: the token every POST form of the page carries in its ``csrf`` field.
        state: how the server admits callers (``off``, ``open`` or ``keys``).
        has_session: whether a login session stands for the user (then logout is offered).
    """

    caller: Caller
    context: RequestContext
    csrf: str
    state: AuthState = "keys"
    has_session: bool = False
    policy: AccessPolicy | None = field(default=None, repr=False)

    def may(self, action: str, model: str | None = None) -> bool:
        """Whether the user's scope (and models) allow ``action`` (read, predict or admin)."""
        policy = self.policy or _UNCHARGED
        try:
            policy.check(self.caller, action, model, charge=False)
        except NotAuthorizedError:
            return False
        return True


_UNCHARGED = AccessPolicy(None, enabled=False)


def get_sessions(request: Request) -> SessionStore:
    """The UI's session store (set up with the app)."""
    sessions: SessionStore = request.app.state.ui_sessions
    return sessions


async def ui_user(request: Request) -> UiUser:
    """The user of a page: its session's key (charged once), or anonymous without keys.

    Raises:
        LoginRequired: the server has keys and the request has no live session.
        RateLimitedError: the key has used up its rate.
    """
    policy = get_policy(request)
    context = ui_context(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    state, caller, csrf = await run_in_threadpool(
        _resolve, policy, get_sessions(request), session_id
    )
    if state == "keys":
        if caller is None or csrf is None:
            raise LoginRequired(_path_below_root(request), is_ended=session_id is not None)
        try:
            policy.check(caller, READ, None)
        except RateLimitedError:
            if policy.audit is not None:
                policy.audit.record_later(audit_entry(context, None, "rate_limited", 429, caller))
            raise
        user = UiUser(caller, context, csrf, state, has_session=True, policy=policy)
    else:
        user = UiUser(ANONYMOUS, context, pre_session_csrf(request), state, policy=policy)
    context.caller = user.caller
    request.state.ui_user = user
    return user


def ui_context(request: Request) -> RequestContext:
    """The request's context, its route named as the audit log names actions (``POST /ui/x``).

    The pages' routers are included below the ``/ui`` router, so a route knows its path
    without that prefix.
    """
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    if template is None:
        template = _path_below_root(request).partition("?")[0]
    elif not (template == UI_PREFIX or template.startswith(UI_PREFIX + "/")):
        template = UI_PREFIX + template
    return request_context(request, f"{request.method} {template}")


def _path_below_root(request: Request) -> str:
    """The request's path and query, without the root path (as ``see_other`` takes them)."""
    path: str = request.scope.get("path", "")
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    query = request.url.query
    return path + (f"?{query}" if query else "")


def _resolve(
    policy: AccessPolicy, sessions: SessionStore, session_id: str | None
) -> tuple[AuthState, Caller | None, str | None]:
    """How the server admits callers, and the session's caller and CSRF token (if live)."""
    state = policy.state()
    if state != "keys" or not session_id:
        return state, None, None
    session = sessions.find(session_id)
    if session is None:
        return state, None, None
    caller = policy.caller_of(session.key_id)
    if caller is None:  # the key was revoked or has expired: so has the session
        sessions.end(session_id)
        return state, None, None
    return state, caller, session.csrf


UiUserDep = Annotated[UiUser, Depends(ui_user)]


def pre_session_csrf(request: Request) -> str:
    """The CSRF token of a browser without a session (its cookie, made now if missing)."""
    token = getattr(request.state, "ui_new_csrf", None) or request.cookies.get(CSRF_COOKIE)
    if not token or len(token) > 100:
        token = new_secret()
        request.state.ui_new_csrf = token
    return str(token)


def render(
    request: Request,
    template: str,
    values: dict[str, Any],
    *,
    user: UiUser | None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page: ``template`` filled with ``values``, the user, nav and flashes.

    ``values["nav_model"]`` (a model name) adds the model's pages to the navigation.
    """
    root = request.scope.get("root_path", "")
    nav_model = values.get("nav_model")
    page = {
        **values,
        "request": request,
        "user": user,
        "root": root,
        "csrf": user.csrf if user is not None else pre_session_csrf(request),
        "flashes": [*cookie_flashes(request), *getattr(request.state, "ui_flashes", [])],
        "model_pages": model_pages(request, nav_model) if nav_model else [],
        "has_feature_views": has_feature_views(request),
        "static": functools.partial(static_url, root),
        "current": request.url.path,
    }
    html = _ENV.get_template(template).render(page)
    response = HTMLResponse(
        html,
        status_code,
        headers={
            "content-security-policy": UI_POLICY,
            "cache-control": "no-store",
            # With no-referrer, browsers send "Origin: null" on the pages' own form posts,
            # which the cross-site check (server/browser.py) must refuse.
            "referrer-policy": "same-origin",
        },
    )
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path=cookie_path(request))
    new_csrf = getattr(request.state, "ui_new_csrf", None)
    if new_csrf:
        set_ui_cookie(request, response, CSRF_COOKIE, new_csrf)
    return response


def compile_templates() -> None:
    """Compile every page's template now rather than on its first visit (once a process).

    Compiling one takes tens of milliseconds: a first visit after a restart would wait for
    its page's templates otherwise.
    """
    for name in _ENV.list_templates(filter_func=lambda name: name.endswith(".html.j2")):
        _ENV.get_template(name)


@functools.cache
def _asset_version(name: str) -> str:
    try:
        data = (STATIC_FOLDER / name).read_bytes()
    except OSError:
        return "0"
    return hashlib.sha256(data).hexdigest()[:12]


def static_url(root: str, name: str) -> str:
    """The URL of a vendored asset, versioned by its content (so it may be cached for good)."""
    return f"{root}/ui/static/{quote(name)}?v={_asset_version(name)}"
