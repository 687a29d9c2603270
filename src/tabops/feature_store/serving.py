"""Serving by entity id: the stored features a model version needs, checked and merged.

A version's manifest says which view it reads and which features it takes
(the manifest's ``features``). Before the first lookup for a version, the view's metadata is
checked to hold every one of them, so a model is never scored on a partial row; the check
is repeated when the view is rewritten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tabops.errors import EntityNotFoundError, FeaturesUnavailableError, Problem
from tabops.feature_store.base import FeatureStore, OnlineRow
from tabops.model.predictor import Predictor

_RECHECK_SECONDS = 2.0


@dataclass(frozen=True)
class EntityFeatures:
    """The stored row of an entity and the record of features a model takes from it."""

    row: OnlineRow
    record: dict[str, Any]


class EntityLookup:
    """Looks up the features of an entity for a model version, checking the view first."""

    def __init__(self, store: FeatureStore, recheck_seconds: float = _RECHECK_SECONDS) -> None:
        self.store = store
        self.recheck_seconds = recheck_seconds
        self.is_local = bool(getattr(store, "is_local", False))
        self._checked: dict[tuple[str, int], float] = {}

    def features(self, predictor: Predictor, entity_id: str) -> EntityFeatures:
        """The features of ``entity_id`` that ``predictor`` takes, from its view.

        Raises:
            FeaturesUnavailableError: the version has no view, or the view lacks features.
            EntityNotFoundError: the view holds nothing for that entity.
        """
        view, names = self._requirements(predictor)
        row = self.store.get(view, entity_id)
        if row is None:
            raise EntityNotFoundError(
                f"no features for entity {entity_id!r} in view {view!r}",
                [Problem("entity_id", f"{entity_id!r} is not in the online store")],
            )
        return EntityFeatures(row=row, record={name: row.values.get(name) for name in names})

    def _requirements(self, predictor: Predictor) -> tuple[str, list[str]]:
        version = predictor.version
        needs = version.manifest.features
        if needs is None:
            raise FeaturesUnavailableError(
                f"{version.ref} was trained without an entity column, so it cannot be "
                "served by entity"
            )
        view, names = needs.view, list(needs.names)
        key = (version.name, version.version)
        if time.monotonic() - self._checked.get(key, -1e9) > self.recheck_seconds:
            summary = self.store.view(view)
            if summary is None:
                raise FeaturesUnavailableError(
                    f"the online store has no view {view!r}, which {version.ref} reads; "
                    "run 'tabops features materialize' (or 'tabops features import')"
                )
            lacking = [name for name in names if name not in summary.features]
            if lacking:
                raise FeaturesUnavailableError(
                    f"view {view!r} lacks feature(s) {', '.join(lacking)} that "
                    f"{version.ref} needs; materialize the project again",
                    [Problem(name, "not in the online store") for name in lacking],
                )
            self._checked[key] = time.monotonic()
        return view, names
