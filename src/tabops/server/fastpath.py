"""The predict routes answered at the ASGI level, ahead of the framework's routing.

Starlette's middleware stack and routing cost about as much as scoring one row, so
``POST /predict``, ``/v1/models/{name}/predict``, ``/v1/models/{name}/predict/batch``,
``GET /v1/models/{name}/entities/{id}/prediction`` and the Open Inference Protocol's
``POST /v2/models/{name}[/versions/{version}]/infer`` and MLflow's ``POST /invocations``
and ``/v1/models/{name}/invocations`` are matched here by their path and
handed to ``PredictEndpoints`` (``server/endpoints.py``), which the FastAPI routes call
too. Skipping the framework skips none of the hooks: every answer goes through the serving
core (``authorize``, the prediction sink) and every error through ``server/errors.py``. A
query string other than one ``version`` (any query string, for V2 and MLflow) goes to the
FastAPI routes, which answer it the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextvars import Token
from typing import Any
from urllib.parse import parse_qsl

from tabops.errors import BodyTooLargeError
from tabops.logs import ACCESS_LOGGER, REQUEST_ID
from tabops.metrics import UNNAMED_STATUSES, record_request
from tabops.server.browser import NOSNIFF, is_browser_request
from tabops.server.codecs import v1
from tabops.server.codecs.v2_binary import HEADER_LENGTH, json_part
from tabops.server.codecs.v2_outputs import InferAnswer
from tabops.server.endpoints import (
    INFER,
    INVOCATIONS,
    PredictEndpoints,
    Target,
    match_entity_path,
    match_infer_path,
    match_predict_path,
)
from tabops.server.errors import error_answer
from tabops.server.limits import RequestLimits, answer_within, read_body, send_error
from tabops.serving.context import RequestContext, accepted_request_id, new_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
_OCTETS = (b"content-type", b"application/octet-stream")
_HEADER_LENGTH = HEADER_LENGTH.lower().encode()
_CONTENT_TYPE = b"content-type"
_SMALL_BODY = 4_096  # bytes: a body this small holds a few rows, answered without a timer
_REQUEST_ID = b"x-request-id"
_AUTHORIZATION = b"authorization"
_API_KEY = b"x-api-key"
REQUEST_ID_KEY = "tabops.request_id"
"""Where the middleware leaves a request's id in its ASGI scope, for ``context_of``."""
# The route templates of the fast path's answers, as the FastAPI routes name them in metrics.
_TEMPLATES = {
    "predict": "/v1/models/{name}/predict",
    "predict_batch": "/v1/models/{name}/predict/batch",
    "entity": "/v1/models/{name}/entities/{entity_id}/prediction",
    INFER: "/v2/models/{name}/infer",
    INVOCATIONS: "/v1/models/{name}/invocations",
}
_VERSION_INFER = "/v2/models/{name}/versions/{version}/infer"
_access_log = logging.getLogger(ACCESS_LOGGER)


_PATHS_CACHED = 4_096  # paths parsed once; a client cycling through more only costs time


class FastPredict:
    """Answers predict requests at the ASGI level (no routing, no dependency injection)."""

    def __init__(
        self,
        endpoints: PredictEndpoints,
        entities: bool,
        limits: RequestLimits,
        *,
        is_access_logged: bool = False,
    ) -> None:
        self.endpoints = endpoints
        self.entities = entities
        self.limits = limits
        self.is_access_logged = is_access_logged
        self._paths: dict[tuple[str, str], Target | None] = {}

    def match(self, scope: Scope) -> Target | None:
        """The predict request this is, or None for the application to answer. No I/O."""
        if scope["type"] != "http":
            return None
        key = (scope["method"], scope["path"])
        try:
            target = self._paths[key]
        except KeyError:
            target = self._parse(*key)
        if target is None or is_browser_request(scope):
            # A browser's request goes through the middleware: CORS, the origin check.
            return None
        query: bytes = scope.get("query_string", b"")
        if not query:
            return target
        if target.route in (INFER, INVOCATIONS):  # their query strings are the routes' own
            return None
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        if len(pairs) == 1 and pairs[0][0] == "version" and pairs[0][1]:
            return Target(target.route, target.name, pairs[0][1], target.entity_id)
        return None  # anything else: FastAPI parses it the usual way

    def _parse(self, method: str, path: str) -> Target | None:
        """The target of a method and path, remembered (paths repeat: a few per model)."""
        target = None
        if method == "POST":
            target = match_predict_path(path) or match_infer_path(path)
        elif method == "GET" and self.entities:
            target = match_entity_path(path)
        if len(self._paths) >= _PATHS_CACHED:
            self._paths.clear()
        self._paths[(method, path)] = target
        return target

    async def __call__(self, target: Target, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body within the limits, answer through the endpoints, send the response.

        Every answer names its request (``X-Request-ID``), as does every line logged while
        answering; once it is sent, the request is counted. Batches and predictions by entity
        answer within the request timeout; see ``server/limits.py`` for why single records do
        not, and when depth is measured. One coroutine, no ``finally``: this is on every
        request (a request is a task of its own, so its id leaves with it if sending fails).
        """
        limits = self.limits
        context = context_of(scope, target.route)
        token = REQUEST_ID.set(context.request_id)
        headers = [_JSON, NOSNIFF, (_REQUEST_ID, context.request_id.encode())]
        try:
            body = await read_body(scope, receive, limits.max_body_bytes)
        except BodyTooLargeError as exc:  # refused before the rest of the body is read
            status = await send_error(
                send, exc, close=True, headers=headers[2:], path=scope["path"]
            )
            self._observe(target, scope, context, status, token)
            return
        if body is None:  # the client went away before sending its body
            REQUEST_ID.reset(token)
            return
        try:
            pending: Awaitable[v1.Answer | InferAnswer]
            if target.route == INFER:
                length = header_of(scope, _HEADER_LENGTH)
                pending = self.endpoints.infer(context, target, body, length)
                if len(body) > _SMALL_BODY:
                    pending = answer_within(limits.timeout_seconds, pending)
            elif target.route == INVOCATIONS:
                media = header_of(scope, _CONTENT_TYPE)
                pending = self.endpoints.invoke(context, target, body, media)
                if len(body) > _SMALL_BODY:
                    pending = answer_within(limits.timeout_seconds, pending)
            else:
                pending = self.endpoints.answer(context, target, body, {})
                if target.route != "predict":
                    pending = answer_within(limits.timeout_seconds, pending)
            answer = await pending
        except Exception as exc:  # every error is answered through the one map
            # A body nested too deep is answered as such, whatever else was wrong with it.
            is_too_deep = limits.is_too_deep(json_part(scope.get("headers", ()), body))
            error = limits.depth_error() if is_too_deep else exc
            status, document, extra = error_answer(error, scope["path"])
            headers.extend((key.lower().encode(), value.encode()) for key, value in extra.items())
            await _send(send, status, headers, document)
            self._observe(target, scope, context, status, token)
            return
        if isinstance(answer, InferAnswer):
            if answer.header_length is not None:  # binary outputs follow the JSON
                headers[0] = _OCTETS
                headers.append((_HEADER_LENGTH, str(answer.header_length).encode()))
            await _send(send, 200, headers, answer.body)
        elif isinstance(answer, bytes):
            await _send(send, 200, headers, answer)
        else:
            await _stream(send, headers, answer)
        self._observe(target, scope, context, 200, token)

    def _observe(
        self,
        target: Target,
        scope: Scope,
        context: RequestContext,
        status: int,
        token: Token[str | None],
    ) -> None:
        """Count an answered request (and write its access line); the request id is unset."""
        REQUEST_ID.reset(token)
        if target.name is None:
            route = "/invocations" if target.route == INVOCATIONS else "/predict"
        else:
            route = _TEMPLATES[target.route]
        if target.route == INFER and target.ref is not None:
            route = _VERSION_INFER
        model, version = context.served or (_named(target, status), "")
        seconds = time.perf_counter() - context.started
        record_request(route, model, version, status, seconds)
        if self.is_access_logged:
            log_access(scope["method"], route, status, seconds, context.request_id)


def _named(target: Target, status: int) -> str:
    """The model a request names, as a label; none when it may not exist (or is the default)."""
    if target.name is None or status in UNNAMED_STATUSES:
        return ""
    return target.name


def log_access(method: str, route: str, status: int, seconds: float, request_id: str) -> None:
    """Write the access line of one answered request (JSON logs with ``--access-log``)."""
    duration_ms = round(seconds * 1000, 3)
    _access_log.info(
        "%s %s %d %.3f ms",
        method,
        route,
        status,
        duration_ms,
        extra={
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "request_id": request_id,
        },
    )


def context_of(scope: Scope, route: str) -> RequestContext:
    """The request context of an ASGI request: its request id, API key and peer.

    The request id is the caller's ``X-Request-ID`` when it is safe, else a fresh one.

    The key is read from ``Authorization: Bearer <key>`` or, failing that, ``X-API-Key``.
    """
    offered = credential = None
    for key, value in scope.get("headers", ()):
        if key == _REQUEST_ID:
            offered = accepted_request_id(value.decode("latin-1"))
        elif key == _AUTHORIZATION:
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                credential = token.strip()
        elif key == _API_KEY and credential is None:
            credential = value.decode("latin-1").strip() or None
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else None
    # The middleware has chosen the id already (the caller's, or a fresh one); the fast
    # path makes a fresh one here, as every answer names its request.
    request_id = scope.get(REQUEST_ID_KEY) or offered or new_id()
    return RequestContext(route, request_id, credential, peer)


def header_of(scope: Scope, name: bytes) -> str | None:
    """The value of a request header (lower-case ``name``), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    length = (b"content-length", str(len(body)).encode())
    await send({"type": "http.response.start", "status": status, "headers": [*headers, length]})
    await send({"type": "http.response.body", "body": body})


async def _stream(send: Send, headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
