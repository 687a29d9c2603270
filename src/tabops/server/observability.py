"""``GET /metrics``, and the ASGI wrapper that names, counts and logs every other answer.

The predict routes answered on the fast path do the same in ``server/fastpath.py``; every
other request goes through ``RequestObserver``, a pure ASGI wrapper (no
``BaseHTTPMiddleware``, whose task per request costs more than an answer): it gives the
request an id, sends it back as ``X-Request-ID`` on whatever answers (a route, an error
handler, a 404, the limits' 413 and 503), and counts the answer by route template.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tabops.errors import TabopsError
from tabops.jobs import JobService
from tabops.logs import REQUEST_ID
from tabops.metrics import (
    CONTENT_TYPE,
    UNNAMED_STATUSES,
    JobQueueDepthCollector,
    record_request,
    scrape_metrics,
)
from tabops.server.deps import JobsDep, ReadAccess
from tabops.server.fastpath import REQUEST_ID_KEY, log_access
from tabops.serving.context import RequestContext, accepted_request_id, new_id

logger = logging.getLogger("tabops.server")

router = APIRouter(tags=["metrics"])

UNMATCHED = "unmatched"
"""The route label of a request no route matched (an unknown path, or refused before routing)."""

_REQUEST_ID = b"x-request-id"


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {}}}},
)
def read_metrics(_caller: ReadAccess, jobs: JobsDep) -> Response:
    """Every metric of the server in Prometheus' text format, for a scraper.

    Under ``tabops serve --workers N`` the workers' values are merged, so whichever worker
    answers the scrape, the counts are the whole server's. The job queue depth is read from
    the job store now. Once API keys exist, a scraper sends a key with the ``read`` scope
    (``Authorization: Bearer <key>``), as for the other read routes.
    """
    collector = JobQueueDepthCollector(lambda: _queued_jobs(jobs))
    return Response(scrape_metrics([collector]), media_type=CONTENT_TYPE)


def _queued_jobs(jobs: JobService) -> int | None:
    """How many jobs wait, or None when the job store cannot say now (scraped without it)."""
    try:
        return jobs.queue_depth()
    except TabopsError as exc:
        logger.warning("job queue depth not scraped: %s", exc.message)
        return None


class RequestObserver:
    """Request id, count, duration and access line for every request the app routes."""

    def __init__(self, *, is_access_logged: bool = False) -> None:
        self.is_access_logged = is_access_logged

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        """Run ``app`` on an HTTP request under its id, then count it; others pass through."""
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _offered_id(scope) or new_id()
        scope[REQUEST_ID_KEY] = request_id
        header = (_REQUEST_ID, request_id.encode())
        status = 500  # what the server answers when the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                kept = [item for item in message.get("headers", ()) if item[0] != _REQUEST_ID]
                message = {**message, "headers": [*kept, header]}
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            self._observe(scope, status, time.perf_counter() - started, request_id)

    def _observe(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        model, version = _served(scope, status)
        record_request(route, model, version, status, seconds)
        if self.is_access_logged:
            log_access(scope["method"], route, status, seconds, request_id)


def _offered_id(scope: Scope) -> str | None:
    """The caller's ``X-Request-ID`` when it is safe to echo."""
    for key, value in scope.get("headers", ()):
        if key == _REQUEST_ID:
            return accepted_request_id(value.decode("latin-1"))
    return None


def _served(scope: Scope, status: int) -> tuple[str, int | str]:
    """The model and version that answered, else the model the path names (or none)."""
    state = scope.get("state") or {}
    context = state.get("context")
    if isinstance(context, RequestContext) and context.served is not None:
        return context.served
    if status in UNNAMED_STATUSES or scope.get("route") is None:
        return "", ""
    return str((scope.get("path_params") or {}).get("name", "")), ""
