"""The predict routes answered at the ASGI level, ahead of the framework's routing.

For ``POST /predict``, ``/v1/models/{name}/predict`` and ``/v1/models/{name}/predict/batch``,
and ``GET /v1/models/{name}/entities/{id}/prediction``,
whose model version is already loaded and whose alias is freshly resolved, the application's
``__call__`` hands the request to ``FastPredict``, which reads the body and answers through
``predicting``: no routing, no dependency injection, no response model. Everything else
(another path, a version still to load, an expired alias, an unusual query string) goes to
the FastAPI routes, which call the same ``predicting`` functions after doing the I/O this
layer never does on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from tabops.deployment import Deployment
from tabops.errors import FeatureStoreError
from tabops.feature_store.serving import EntityLookup
from tabops.predictor import Predictor
from tabops.server.errors import RequestBodyError, error_document, status_of
from tabops.server.predicting import Batchers, predict_batch, predict_entity, predict_one

logger = logging.getLogger("tabops.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_PREFIX = "/v1/models/"
_ONE = "/predict"
_BATCH = "/predict/batch"
_JSON = [(b"content-type", b"application/json")]
_ENTITY = "/prediction"
_ENTITIES = "/entities/"
_UNUSUAL = "\x00unusual"  # no version is called this: such queries go to the application
Target = tuple[Predictor, str, str | None]
"""(version, "one" | "batch" | "entity", entity id)"""


class FastPredict:
    """Answers predict requests for loaded versions without the framework's routing."""

    def __init__(
        self,
        deployment: Deployment,
        batchers: Batchers,
        max_batch_rows: int,
        lookup: EntityLookup | None = None,
    ) -> None:
        self.deployment = deployment
        self.batchers = batchers
        self.max_batch_rows = max_batch_rows
        self.lookup = lookup

    def match(self, scope: Scope) -> Target | None:
        """What this layer answers the request with, or None. No I/O."""
        if scope["type"] != "http":
            return None
        if scope["method"] == "POST":
            route = _route(scope["path"])
            entity_id = None
        elif scope["method"] == "GET" and self.lookup is not None:
            route, entity_id = _entity_route(scope["path"])
        else:
            return None
        if route is None:
            return None
        name, kind = route
        ref = _version(scope.get("query_string", b""))
        if ref == _UNUSUAL:
            return None
        predictor = self.deployment.cached(name, ref)
        if predictor is None or predictor.lean is None:
            return None
        return predictor, kind, entity_id

    async def answer(self, target: Target, receive: Receive, send: Send) -> None:
        """Read the body, answer it, and send the response."""
        predictor, kind, entity_id = target
        body = await _read_body(receive)
        if body is None:  # the client went away before sending its body
            return
        try:
            if kind == "batch":
                answer = await predict_batch(predictor, body, self.max_batch_rows)
            elif kind == "entity" and self.lookup is not None and entity_id is not None:
                batcher = self.batchers.get(predictor)
                answer = await predict_entity(predictor, self.lookup, entity_id, {}, batcher)
            else:
                answer = await predict_one(predictor, body, self.batchers.get(predictor))
        except RequestBodyError as exc:
            await _send(
                send, exc.status, orjson.dumps(error_document(exc.code, exc.message, exc.problems))
            )
            return
        except FeatureStoreError as exc:
            status, code = status_of(exc)
            document = error_document(code, exc.message, exc.problems)
            await _send(send, status, orjson.dumps(document))
            return
        except Exception:
            logger.exception("unexpected error scoring with %s", predictor.version.ref)
            message = "an internal error occurred; see server log"
            await _send(send, 500, orjson.dumps(error_document("internal_error", message)))
            return
        if isinstance(answer, bytes):
            await _send(send, 200, answer)
        else:
            await _stream(send, answer)


def _route(path: str) -> tuple[str | None, str] | None:
    """(model name or None for the default model, "one" or "batch") for a predict path."""
    if path in ("/predict", "/predict/"):
        return None, "one"
    if not path.startswith(_PREFIX):
        return None
    rest = path[len(_PREFIX) :]
    for suffix, kind in ((_BATCH, "batch"), (_ONE, "one")):
        if rest.endswith(suffix):
            name = rest[: -len(suffix)]
            if name and "/" not in name:
                return name, kind
    return None


def _entity_route(path: str) -> tuple[tuple[str, str] | None, str | None]:
    """((model name, "entity"), entity id) for an entity prediction path."""
    if not path.startswith(_PREFIX) or not path.endswith(_ENTITY):
        return None, None
    name, found, entity_id = path[len(_PREFIX) : -len(_ENTITY)].partition(_ENTITIES)
    if not found or not name or "/" in name or not entity_id or "/" in entity_id:
        return None, None
    return (name, "entity"), entity_id


def _version(query: bytes) -> str | None:
    """The ``version`` query parameter; ``_UNUSUAL`` when the query is anything else."""
    if not query:
        return None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(pairs) == 1 and pairs[0][0] == "version" and pairs[0][1]:
        return pairs[0][1]
    return _UNUSUAL


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, status: int, body: bytes) -> None:
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _stream(send: Send, chunks: Iterator[bytes]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _JSON})
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
