"""The UI's place in the app: its pages, static assets, error pages and ``/`` leading to it.

Errors on a ``/ui`` path are answered as an HTML page with the status the API would give
(``server/errors.py`` keeps the mapping), never JSON and never a traceback; every other
path keeps the API's JSON answers.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from tabops.errors import Problem, TabopsError
from tabops.monitoring.latest import LatestSummaries
from tabops.server.errors import headers_of, problems_from_pydantic, status_of
from tabops.server.ui import router
from tabops.server.ui.monitoring import page_summary
from tabops.server.ui.navigation import find_model_pages
from tabops.server.ui.overview import show_overview
from tabops.server.ui.render import (
    SESSION_COOKIE,
    STATIC_FOLDER,
    LoginRequired,
    compile_templates,
    cookie_path,
    flash,
    render,
)
from tabops.server.ui.sessions import SessionStore

logger = logging.getLogger("tabops.server")

ASSET_MAX_AGE_SECONDS = 365 * 24 * 3600
"""Assets are linked with their content's hash (``?v=``), so a browser may keep them."""
_STATUS_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported content",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    503: "Unavailable",
    507: "Storage full",
}

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


class AssetFiles(StaticFiles):
    """Static files answered with long cache headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file, cacheable for a year (its URL changes with its content)."""
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            response.headers["cache-control"] = (
                f"public, max-age={ASSET_MAX_AGE_SECONDS}, immutable"
            )
        return response


def install_ui(app: FastAPI, sessions: SessionStore) -> None:
    """Add the UI to ``app``: assets, pages, HTML error pages and the redirect from ``/``.

    Call after ``install_error_handlers`` (the UI's handlers wrap the API's) and once
    ``app.state.watch`` is set: the monitoring page's summaries are computed from it, by a
    thread stopped when the app shuts down.
    """
    app.state.ui_sessions = sessions
    summaries = LatestSummaries(functools.partial(page_summary, app.state.watch.monitor))
    app.state.ui_summaries = summaries
    _prepare_on_start_up(app, summaries)
    app.mount("/ui/static", AssetFiles(directory=STATIC_FOLDER), name="ui-static")
    app.include_router(router)
    app.add_api_route("/ui", show_overview, methods=["GET"], include_in_schema=False)

    @app.get("/", include_in_schema=False)
    async def go_to_ui(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/ui", status_code=303)

    app.add_exception_handler(LoginRequired, _login_required)  # type: ignore[arg-type]  # Starlette types handlers loosely
    for error_type in (TabopsError, RequestValidationError, StarletteHTTPException, Exception):
        api_handler: Handler = app.exception_handlers[error_type]
        app.add_exception_handler(error_type, _with_html_on_ui(api_handler))


def _prepare_on_start_up(app: FastAPI, summaries: LatestSummaries) -> None:
    """Have the pages ready before the first visit; stop the summaries' thread at shutdown."""
    app_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with app_lifespan(app) as state:
            await run_in_threadpool(compile_templates)
            find_model_pages(app)
            summaries.start()
            try:
                yield state
            finally:
                await run_in_threadpool(summaries.stop)

    app.router.lifespan_context = lifespan


def is_ui_path(request: Request) -> bool:
    """Whether the request is for a page of the UI (below the root path)."""
    path: str = request.scope.get("path", "")
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == "/ui" or path.startswith("/ui/")


async def _login_required(request: Request, exc: LoginRequired) -> Response:
    root = request.scope.get("root_path", "")
    response = RedirectResponse(
        f"{root}/ui/login?{urlencode({'next': exc.next_path})}", status_code=303
    )
    if exc.is_ended:
        response.delete_cookie(SESSION_COOKIE, path=cookie_path(request))
        flash(response, "Your session has ended: log in again.", "warn", request=request)
    return response


def _with_html_on_ui(api_handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if not is_ui_path(request):
            return await _answer(api_handler, request, exc)
        try:
            return error_page(request, exc)
        except Exception:  # the page itself failed: the API's answer is better than none
            logger.exception("could not render the error page")
            return await _answer(api_handler, request, exc)

    return handle


async def _answer(handler: Handler, request: Request, exc: Exception) -> Response:
    answer = handler(request, exc)
    return await answer if inspect.isawaitable(answer) else answer


def error_page(request: Request, exc: Exception) -> Response:
    """The HTML page answering an error on a UI path, with the status the API would give."""
    headers: dict[str, str] = {}
    problems: list[Problem] = []
    if isinstance(exc, TabopsError):
        status, code = status_of(exc)
        message, problems = exc.message, exc.problems
        if status == 500:
            logger.error("unmapped error: %s", exc.message)
        headers = {k: v for k, v in headers_of(exc, status).items() if k == "Retry-After"}
    elif isinstance(exc, RequestValidationError):
        status, code, message = 422, "invalid_request", "the request is invalid"
        problems = problems_from_pydantic(exc.errors())
    elif isinstance(exc, StarletteHTTPException):
        status, code, message = exc.status_code, "http_error", str(exc.detail)
        headers = dict(exc.headers or {})
    else:
        logger.error("unexpected error", exc_info=exc)
        status, code, message = 500, "internal_error", "an internal error occurred; see server log"
    values = {
        "status": status,
        "code": code,
        "heading": _STATUS_TITLES.get(status, "Error"),
        "message": message,
        "problems": problems,
    }
    user = getattr(request.state, "ui_user", None)
    response = render(request, "error.html.j2", values, user=user, status_code=status)
    # The unexpected-error handler answers from outside every middleware.
    response.headers["x-content-type-options"] = "nosniff"
    response.headers.update(headers)
    return response
