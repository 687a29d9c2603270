"""Which model versions a server answers with: aliases resolved, predictors loaded and cached."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tabops.errors import ArtifactIntegrityError, ModelNotFoundError, TabopsError
from tabops.model.predictor import Predictor
from tabops.registry.versions import DEFAULT_ALIAS, ModelRegistry, is_version_number


@dataclass(frozen=True)
class ServedModel:
    """Status of a model's production version in this process."""

    name: str
    version: int | None
    status: str
    detail: str | None = None
    runtime: str | None = None


class Deployment:
    """Loads each requested version once (verified) and keeps it; re-reads aliases now and then.

    Thread-safe: FastAPI runs handlers on a thread pool.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        default_model: str | None = None,
        alias_cache_seconds: float = 2.0,
        threads: int = 1,
    ) -> None:
        self.registry = registry
        self.threads = threads
        self.configured_default = default_model
        self.alias_cache_seconds = alias_cache_seconds
        self.started_at = datetime.now(UTC)
        self._predictors: dict[tuple[str, int], Predictor] = {}
        self._refused: dict[tuple[str, int], ArtifactIntegrityError] = {}
        self._aliases: dict[tuple[str, str], tuple[int, float]] = {}
        self._default: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def default_model(self) -> str:
        """The model answering ``POST /predict``.

        The configured one (``serving.default_model``) when set, else the one the registry
        records, re-read at most every ``alias_cache_seconds`` like an alias: registering
        another model never changes it.

        Raises:
            ModelNotFoundError: no model registered, or several and none recorded as default.
        """
        if self.configured_default:
            return self.configured_default
        cached = self._default
        if cached is not None and time.monotonic() - cached[1] < self.alias_cache_seconds:
            return cached[0]
        name = self.registry.default_model()
        if name is None:
            models = self.registry.list_models()
            if not models:
                raise ModelNotFoundError(
                    "no model is registered yet; train one with 'tabops train'"
                )
            raise ModelNotFoundError(
                f"several models are registered ({', '.join(models)}) and none is the "
                "default; choose one with 'tabops models default NAME', "
                "or call /v1/models/{name}/predict"
            )
        self._default = (name, time.monotonic())
        return name

    def resolve(self, name: str, ref: str | int | None = None) -> int:
        """The version a reference points to, caching alias look-ups briefly."""
        if isinstance(ref, int) or (ref is not None and is_version_number(ref)):
            if (name, int(ref)) in self._predictors:
                return int(ref)  # loaded before, and versions never change or vanish
            return self.registry.resolve(name, ref)
        alias = DEFAULT_ALIAS if ref is None else ref
        cached = self._aliases.get((name, alias))
        now = time.monotonic()
        if cached is not None and now - cached[1] < self.alias_cache_seconds:
            return cached[0]
        version = self.registry.resolve(name, alias)
        self._aliases[(name, alias)] = (version, now)
        return version

    def forget_aliases(self, name: str) -> None:
        """Read the model's aliases afresh on their next use: this process just moved one."""
        for key in list(self._aliases):  # a copy: other threads add entries meanwhile
            if key[0] == name:
                self._aliases.pop(key, None)

    def get(self, name: str, ref: str | int | None = None) -> Predictor:
        """The predictor for a model reference, loading and verifying it on first use."""
        key = (name, self.resolve(name, ref))
        predictor = self._predictors.get(key)
        if predictor is not None:
            return predictor
        with self._lock:
            if key in self._predictors:
                return self._predictors[key]
            if key in self._refused:
                raise self._refused[key]
            try:
                predictor = Predictor.load(self.registry, name, key[1], threads=self.threads)
            except ArtifactIntegrityError as exc:
                self._refused[key] = exc
                raise
            self._predictors[key] = predictor
            return predictor

    def cached_default(self) -> str | None:
        """The default model's name when it is known without any I/O, else None."""
        if self.configured_default:
            return self.configured_default
        cached = self._default
        if cached is None or time.monotonic() - cached[1] >= self.alias_cache_seconds:
            return None
        return cached[0]

    def cached(self, name: str | None, ref: str | None = None) -> Predictor | None:
        """The predictor for a reference if it can be had without any I/O, else None.

        ``name`` None means the default model. Used on the event loop: a miss (not loaded
        yet, alias cache expired) sends the request down the path that may read the registry.
        """
        now = time.monotonic()
        if name is None:
            name = self.cached_default()
            if name is None:
                return None
        if ref is not None and is_version_number(ref):
            return self._predictors.get((name, int(ref)))
        alias = self._aliases.get((name, DEFAULT_ALIAS if ref is None else ref))
        if alias is None or now - alias[1] >= self.alias_cache_seconds:
            return None
        return self._predictors.get((name, alias[0]))

    def warm(self) -> list[ServedModel]:
        """Load the production version of every model now, so the first request is fast."""
        return [self._status(name, load=True) for name in self.registry.list_models()]

    def served(self) -> list[ServedModel]:
        """The status of every model's production version, without loading anything."""
        return [self._status(name, load=False) for name in self.registry.list_models()]

    def loaded(self) -> list[Predictor]:
        """Predictors loaded so far."""
        return list(self._predictors.values())

    def _status(self, name: str, *, load: bool) -> ServedModel:
        try:
            version = self.resolve(name)
            if load:
                self.get(name)
        except ArtifactIntegrityError as exc:
            return ServedModel(name, None, "refused", exc.message)
        except TabopsError as exc:
            return ServedModel(name, None, "unavailable", exc.message)
        if (name, version) in self._refused:
            return ServedModel(name, version, "refused", self._refused[(name, version)].message)
        predictor = self._predictors.get((name, version))
        if predictor is None:
            return ServedModel(name, version, "not loaded")
        return ServedModel(name, version, "loaded", predictor.runtime_detail, predictor.runtime)

    def describe(self) -> dict[str, Any]:
        """A summary for health endpoints."""
        return {"models": [vars(model) for model in self.served()]}
