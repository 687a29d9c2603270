"""``ServingCore``: resolve a version for a caller, score what a route decoded, decide, record.

Every way into a model goes through one of the ``decide_*`` methods, which all end in
``_decide``: the threshold is applied there (through ``Predictor.is_positive``) and the sink
hook sees each decision there, once. ``resolve`` runs the ``authorize`` hook before any
version is loaded. Work that may block (reading the registry, a networked store, scoring a
large batch) runs on a worker thread, so the async methods never stall the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import orjson
import pandas as pd

from tabops.config import Settings
from tabops.errors import InvalidInputError, Problem, StoredFeaturesInvalidError
from tabops.feature_store.base import OnlineRow
from tabops.feature_store.serving import EntityLookup
from tabops.metrics import record_predictions
from tabops.model.predictor import Predictor
from tabops.registry.versions import ModelRegistry
from tabops.serving.batching import Batchers
from tabops.serving.context import RequestContext
from tabops.serving.decisions import Decisions
from tabops.serving.deployment import Deployment
from tabops.serving.hooks import (
    PREDICT,
    FeatureRows,
    Hooks,
    ServedPredictions,
    allow_everyone,
)
from tabops.validation import RowProblem

THREAD_ROWS = 2_000
"""Batches above this many rows are scored on a worker thread."""


@dataclass(frozen=True)
class EntityDecision:
    """A decision from an entity's stored features, with what it was made from."""

    decisions: Decisions
    stored: OnlineRow
    record: dict[str, Any]
    overridden: list[str]


@dataclass(frozen=True)
class FrameDecisions:
    """The decisions for the valid rows of a frame, and what was wrong with the others."""

    decisions: Decisions
    valid: np.ndarray
    problems: list[RowProblem]


class ServingCore:
    """The one way into a model, shared by every route and protocol.

    Args:
        deployment: which versions this process serves (None for a core that only scores
            predictors it is given, as a Dask worker does).
        hooks: ``authorize`` and the prediction sink.
        batchers: micro-batching of single rows (off when None).
        lookup: the online store's entity lookups, for predicting by entity id.
    """

    def __init__(
        self,
        deployment: Deployment | None = None,
        hooks: Hooks | None = None,
        *,
        batchers: Batchers | None = None,
        lookup: EntityLookup | None = None,
    ) -> None:
        self.deployment = deployment
        self.hooks = hooks or Hooks()
        # Skipped, not called, when it allows everyone: it runs on every request.
        self._authorize = None if self.hooks.authorize is allow_everyone else self.hooks.authorize
        self.batchers = batchers or Batchers(max_rows=1)
        self.lookup = lookup

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        registry: ModelRegistry,
        hooks: Hooks | None = None,
        lookup: EntityLookup | None = None,
    ) -> ServingCore:
        """A core over ``registry`` with the default model, caching and batching of ``settings``."""
        deployment = Deployment(
            registry,
            settings.serving.default_model,
            settings.serving.alias_cache_seconds,
            threads=settings.serving.onnx_threads,
        )
        batchers = Batchers(
            settings.serving.micro_batch_rows, settings.serving.micro_batch_wait_ms / 1000
        )
        return cls(deployment, hooks, batchers=batchers, lookup=lookup)

    # Which version ---------------------------------------------------------------------

    async def resolve(
        self, context: RequestContext, name: str | None, ref: str | None
    ) -> Predictor:
        """The version a request names, once the caller is authorized to use the model.

        ``name`` None is the default model. Loading happens on a worker thread.

        Raises:
            AccessError: the ``authorize`` hook refused.
            ModelNotFoundError, VersionNotFoundError, ArtifactIntegrityError: as the
                deployment raises them.
        """
        deployment = self.served_deployment()
        if name is None:
            name = deployment.cached_default()
            if name is None:
                name = await asyncio.to_thread(deployment.default_model)
        self.authorize(context, name)
        predictor = deployment.cached(name, ref)
        if predictor is None:
            predictor = await asyncio.to_thread(deployment.get, name, ref)
        return predictor

    def resolve_cached(
        self, context: RequestContext, name: str | None, ref: str | None
    ) -> Predictor | None:
        """As ``resolve`` when the version can be had without any I/O, else None.

        The caller is authorized only when a version is returned: on None, ``resolve``
        authorizes, still before anything is loaded.

        Raises:
            AccessError: the ``authorize`` hook refused.
        """
        deployment = self.deployment
        if deployment is None:
            return None
        if name is None:
            name = deployment.cached_default()
            if name is None:
                return None
        predictor = deployment.cached(name, ref)
        if predictor is not None:
            self.authorize(context, name)
        return predictor

    def served_deployment(self) -> Deployment:
        """The deployment this core resolves versions in.

        Raises:
            TypeError: the core only scores versions it is given.
        """
        if self.deployment is None:
            raise TypeError("this serving core scores given versions only; it has no deployment")
        return self.deployment

    # Scoring -------------------------------------------------------------------------------

    @property
    def keeps_inputs(self) -> bool:
        """Whether decisions' inputs are wanted (a sink takes them); else routes may pass None."""
        return self.hooks.sink is not None

    def authorize(self, context: RequestContext, name: str | None, action: str = PREDICT) -> None:
        """Ask the ``authorize`` hook whether the caller may do ``action`` (with model ``name``).

        Raises:
            AccessError: the hook refused.
        """
        if self._authorize is not None:
            self._authorize(context, action, name)

    async def decide_row(
        self,
        context: RequestContext,
        predictor: Predictor,
        row: np.ndarray,
        features: FeatureRows | None,
    ) -> Decisions:
        """One encoded row, micro-batched with concurrent requests for the same version."""
        batcher = self.batchers.get(predictor)
        if batcher is not None:
            probability = await batcher.score(row)
        else:
            probability = float(predictor.score_encoded(row.reshape(1, -1))[0])
        return self._decide(context, predictor, [probability], features)

    async def decide_array(
        self,
        context: RequestContext,
        predictor: Predictor,
        encoded: np.ndarray,
        features: FeatureRows | None,
    ) -> Decisions:
        """Rows already through the version's encoder, scored in one call."""
        if len(encoded) > THREAD_ROWS:
            probabilities = await asyncio.to_thread(predictor.score_encoded, encoded)
        else:
            probabilities = predictor.score_encoded(encoded)
        return self._decide(context, predictor, probabilities, features)

    async def decide_records(
        self, context: RequestContext, predictor: Predictor, records: Sequence[Mapping[str, Any]]
    ) -> Decisions:
        """Validated records (absent or null = missing); one record is micro-batched."""
        features = FeatureRows(predictor.feature_names, records=records)
        if predictor.parts is None:  # no encoder: the frame path, on a worker thread
            probabilities = await asyncio.to_thread(predictor.score_records, records)
            return self._decide(context, predictor, probabilities, features)
        encoded = predictor.encode_records(records)
        if len(records) == 1:
            return await self.decide_row(context, predictor, encoded[0], features)
        return await self.decide_array(context, predictor, encoded, features)

    def decide_records_now(
        self,
        context: RequestContext,
        predictor: Predictor,
        records: Sequence[Mapping[str, Any]],
        continues: Decisions | None = None,
    ) -> Decisions:
        """As ``decide_records``, on the calling thread (jobs).

        Records scored in pieces pass the previous piece's decisions as ``continues``:
        their prediction ids then carry on where those ended.
        """
        features = FeatureRows(predictor.feature_names, records=records)
        probabilities = predictor.score_records(records)
        if continues is None:
            return self._decide(context, predictor, probabilities, features)
        decisions = Decisions(
            predictor,
            probabilities,
            context,
            id_prefix=continues.id_prefix,
            first_index=continues.first_index + len(continues),
        )
        _count(context, decisions)
        self._record(context, predictor, decisions, features)
        return decisions

    def decide_frame(
        self, context: RequestContext, predictor: Predictor, frame: pd.DataFrame, first_row: int = 1
    ) -> FrameDecisions:
        """The valid rows of a frame scored; the others listed by row number and field.

        Raises:
            InvalidInputError: a feature column is missing (no row can be scored).
        """
        features = predictor.as_features(frame)
        invalid, problems = predictor.invalid_rows(features, first_row)
        if features is not frame:  # name cells by the input's own columns
            names = {new: old for old, new in predictor.renames.items() if old in frame.columns}
            problems = [replace(p, column=names.get(p.column, p.column)) for p in problems]
        valid = ~invalid
        rows = features.loc[valid] if not valid.all() else features
        probabilities = predictor.score_frame(rows) if len(rows) else np.empty(0)
        inputs = FeatureRows(predictor.feature_names, frame=rows)
        decisions = self._decide(context, predictor, probabilities, inputs)
        return FrameDecisions(decisions, valid, problems)

    async def decide_entity(
        self,
        context: RequestContext,
        predictor: Predictor,
        entity_id: str,
        overrides: Mapping[str, Any],
    ) -> EntityDecision:
        """An entity's stored features, with ``overrides`` replacing some, scored.

        An in-process store (SQLite) is read on the event loop; a networked one on a thread.

        Raises:
            FeatureStoreError: no such entity, or the store lacks features the version needs.
            InvalidInputError: an unknown or invalid override.
            StoredFeaturesInvalidError: stored values that no longer fit the version.
        """
        lookup = self.lookup
        if lookup is None:
            raise TypeError("this serving core has no online store")
        if lookup.is_local:
            found = lookup.features(predictor, entity_id)
        else:
            found = await asyncio.to_thread(lookup.features, predictor, entity_id)
        record, row = _entity_record(predictor, found.record, entity_id, overrides)
        context.entity_id = entity_id
        features = FeatureRows(predictor.feature_names, records=[record])
        if row is None:  # no encoder: the frame path, on a worker thread
            probabilities = await asyncio.to_thread(predictor.score_records, [record])
            decisions = self._decide(context, predictor, probabilities, features)
        else:
            decisions = await self.decide_row(context, predictor, row, features)
        return EntityDecision(decisions, found.row, record, sorted(overrides))

    def _decide(
        self,
        context: RequestContext,
        predictor: Predictor,
        probabilities: Sequence[float] | np.ndarray,
        features: FeatureRows | None,
    ) -> Decisions:
        decisions = Decisions(predictor, probabilities, context)
        _count(context, decisions)
        if self.hooks.sink is not None:
            self._record(context, predictor, decisions, features)
        return decisions

    def _record(
        self,
        context: RequestContext,
        predictor: Predictor,
        decisions: Decisions,
        features: FeatureRows | None,
    ) -> None:
        if self.hooks.sink is not None:
            inputs = features or FeatureRows(predictor.feature_names)
            self.hooks.record(ServedPredictions(context, predictor, decisions, inputs))


def _count(context: RequestContext, decisions: Decisions) -> None:
    """Count the decisions by class, and note on the request which version made them."""
    context.served = model, version = decisions.model, decisions.version
    positives = decisions.positives
    if positives:
        record_predictions(model, version, decisions.positive[1], positives)
    if len(decisions) > positives:
        record_predictions(model, version, decisions.negative[1], len(decisions) - positives)


def _entity_record(
    predictor: Predictor,
    stored: dict[str, Any],
    entity_id: str,
    overrides: Mapping[str, Any],
) -> tuple[dict[str, Any], np.ndarray | None]:
    """The record to score and its encoded row; the typed decoder checks a plain record."""
    lean = predictor.lean
    if not overrides and lean is not None:
        values = lean.decode_one(orjson.dumps(stored))
        if values is not None:
            encoded: np.ndarray = lean.encode([values])[0]
            return stored, encoded
    unknown = [key for key in overrides if key not in stored]
    if unknown:
        raise InvalidInputError(
            f"{predictor.version.ref} takes no feature(s) {', '.join(unknown)}",
            [Problem(f"overrides.{key}", "not a feature of the model") for key in unknown],
        )
    record, problems = predictor.validator.check_record({**stored, **overrides})
    bad_overrides = [p for p in problems if p.field.split(".")[0] in overrides]
    if bad_overrides:
        prefixed = [Problem(f"overrides.{p.field}", p.problem) for p in bad_overrides]
        raise InvalidInputError("some overrides are invalid", prefixed)
    if problems:
        raise StoredFeaturesInvalidError(
            f"the stored features of entity {entity_id!r} do not fit {predictor.version.ref}; "
            "materialize them again",
            problems,
        )
    if lean is None:
        return record, None
    return record, predictor.encode_records([record])[0]
