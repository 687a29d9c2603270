"""The predict routes over the serving core, and how their paths are recognised.

``PredictEndpoints`` answers the v1 predict routes and the Open Inference Protocol's infer
route for both ways in: the fast path (``server/fastpath.py``), which matches a request by
its path with the ``match_*`` functions below, and the FastAPI routes, which document them
and answer what the fast path passes on.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, NamedTuple

from tabops.model.predictor import Predictor
from tabops.server.codecs import mlflow, v1, v2
from tabops.server.codecs.v2_outputs import InferAnswer
from tabops.serving.context import RequestContext
from tabops.serving.core import ServingCore

_PREFIX = "/v1/models/"
_ONE = "/predict"
_BATCH = "/predict/batch"
_ENTITY = "/prediction"
_ENTITIES = "/entities/"
_V2_PREFIX = "/v2/models/"
_INFER = "/infer"
_VERSIONS = "/versions/"
INFER = "infer"
"""The route of the Open Inference Protocol's infer requests."""
INVOCATIONS = "invocations"
"""The route of MLflow's scoring requests."""
_INVOCATIONS = "/invocations"
_SUFFIXES = ((_BATCH, "predict_batch"), (_ONE, "predict"), (_INVOCATIONS, INVOCATIONS))
"""The predict routes under ``/v1/models/{name}``, by the end of their path."""


class Target(NamedTuple):
    """A predict request recognised by its path: which route, model, version and entity."""

    route: str  # "predict", "predict_batch", "entity" or "infer"
    name: str | None  # None: the default model
    ref: str | None
    entity_id: str | None = None


class PredictEndpoints:
    """The predict routes over the serving core, for the fast path and FastAPI alike."""

    def __init__(self, core: ServingCore, max_batch_rows: int) -> None:
        self.core = core
        self.max_batch_rows = max_batch_rows

    def answer(
        self, context: RequestContext, target: Target, body: bytes, overrides: dict[str, Any]
    ) -> Awaitable[v1.Answer]:
        """The v1 answer to a request, to await; raises what the core or the codec raise.

        A loaded version answers without an extra coroutine: this is on every request.
        """
        predictor = self.core.resolve_cached(context, target.name, target.ref)
        if predictor is None:
            return self._resolve_and_answer(context, target, body, overrides)
        return self._answer(predictor, context, target, body, overrides)

    async def _resolve_and_answer(
        self, context: RequestContext, target: Target, body: bytes, overrides: dict[str, Any]
    ) -> v1.Answer:
        predictor = await self.core.resolve(context, target.name, target.ref)
        return await self._answer(predictor, context, target, body, overrides)

    def _answer(
        self,
        predictor: Predictor,
        context: RequestContext,
        target: Target,
        body: bytes,
        overrides: dict[str, Any],
    ) -> Awaitable[v1.Answer]:
        if target.route == "predict_batch":
            return v1.predict_batch(self.core, context, predictor, body, self.max_batch_rows)
        if target.route == "entity" and target.entity_id is not None:
            return v1.predict_entity(self.core, context, predictor, target.entity_id, overrides)
        return v1.predict_one(self.core, context, predictor, body)

    def infer(
        self, context: RequestContext, target: Target, body: bytes, header_length: str | None
    ) -> Awaitable[InferAnswer]:
        """The V2 answer to an infer request, to await; raises what the core or codec raise."""
        predictor = self.core.resolve_cached(context, target.name, target.ref)
        if predictor is None:
            return self._resolve_and_infer(context, target, body, header_length)
        return v2.infer(self.core, context, predictor, body, header_length, self.max_batch_rows)

    def invoke(
        self, context: RequestContext, target: Target, body: bytes, content_type: str | None
    ) -> Awaitable[bytes]:
        """MLflow's answer to an invocation (the default predict method), to await."""
        predictor = self.core.resolve_cached(context, target.name, target.ref)
        if predictor is None:
            return self._resolve_and_invoke(context, target, body, content_type)
        return self._invoke(predictor, context, body, content_type)

    async def _resolve_and_invoke(
        self, context: RequestContext, target: Target, body: bytes, content_type: str | None
    ) -> bytes:
        predictor = await self.core.resolve(context, target.name, target.ref)
        return await self._invoke(predictor, context, body, content_type)

    def _invoke(
        self, predictor: Predictor, context: RequestContext, body: bytes, content_type: str | None
    ) -> Awaitable[bytes]:
        return mlflow.invoke(
            self.core,
            context,
            predictor,
            body,
            content_type=content_type,
            predict_method=None,
            max_rows=self.max_batch_rows,
        )

    async def _resolve_and_infer(
        self, context: RequestContext, target: Target, body: bytes, header_length: str | None
    ) -> InferAnswer:
        predictor = await self.core.resolve(context, target.name, target.ref)
        return await v2.infer(
            self.core, context, predictor, body, header_length, self.max_batch_rows
        )


def match_predict_path(path: str) -> Target | None:
    """The target of a POST predict path (v1, or MLflow's invocations), or None."""
    if path in ("/predict", "/predict/"):
        return Target("predict", None, None)
    if path == _INVOCATIONS:
        return Target(INVOCATIONS, None, None)
    if not path.startswith(_PREFIX):
        return None
    rest = path[len(_PREFIX) :]
    for suffix, route in (
        (_BATCH, "predict_batch"),
        (_ONE, "predict"),
        (_INVOCATIONS, INVOCATIONS),
    ):
        if rest.endswith(suffix):
            name = rest[: -len(suffix)]
            if name and "/" not in name:
                return Target(route, name, None)
    return None


def match_infer_path(path: str) -> Target | None:
    """The target of a POST V2 infer path (a version by number or alias, or none), or None."""
    if not path.startswith(_V2_PREFIX) or not path.endswith(_INFER):
        return None
    name, found, version = path[len(_V2_PREFIX) : -len(_INFER)].partition(_VERSIONS)
    if not name or "/" in name or (found and (not version or "/" in version)):
        return None
    return Target(INFER, name, version if found else None)


def match_entity_path(path: str) -> Target | None:
    """The target of a GET entity prediction path, or None."""
    if not path.startswith(_PREFIX) or not path.endswith(_ENTITY):
        return None
    name, found, entity_id = path[len(_PREFIX) : -len(_ENTITY)].partition(_ENTITIES)
    if not found or not name or "/" in name or not entity_id or "/" in entity_id:
        return None
    return Target("entity", name, None, entity_id)
