"""What the engines share: loading an optional engine, and the predictor a worker rebuilds."""

from __future__ import annotations

import importlib
import threading
from typing import Any

from tabops.errors import MissingExtraError
from tabops.model.manifest import ModelVersion
from tabops.model.predictor import Predictor
from tabops.serving.context import RequestContext
from tabops.serving.core import ServingCore

_PREDICTORS: dict[tuple[str, int, tuple[str, ...]], Predictor] = {}
_PREDICTORS_LOCK = threading.Lock()
WORKER_CORE = ServingCore()
"""The serving core of a Dask or Spark worker: it scores shipped versions, with no hooks
(a sink does not travel with the model's files)."""


def worker_context() -> RequestContext:
    """The request context of rows scored on a cluster worker."""
    return RequestContext("file")


def engine_module(name: str, engine: str, extra: str) -> Any:
    """An optional engine's module, used through ``Any``: strict mypy refuses its untyped calls.

    Raises:
        MissingExtraError: the engine is not installed (the message names the pip extra).
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingExtraError(engine, extra) from exc


def worker_predictor(version: ModelVersion, files: dict[str, bytes]) -> Predictor:
    """The predictor of a version shipped as its files, built and verified once per process.

    A worker scores one version at a time, so an older one is dropped when another comes.
    """
    key = (version.name, version.version, tuple(sorted(version.manifest.files.values())))
    with _PREDICTORS_LOCK:
        predictor = _PREDICTORS.get(key)
        if predictor is None:
            _PREDICTORS.clear()
            predictor = Predictor.from_files(version, files)
            _PREDICTORS[key] = predictor
    return predictor
