"""What the model page shows of each version, read from its manifest's JSON and kept.

A version never changes once registered (a re-signed manifest keeps every fact shown here),
so each is read once per app: with a hundred versions the page reads no manifest at all
after its first view. Reading the JSON, rather than the typed ``Manifest``, keeps pandas out.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from tabops.errors import ArtifactIntegrityError
from tabops.model.files import CARD_FILE
from tabops.registry.versions import MANIFEST, ModelRegistry

KEY_METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "brier")
"""The test metrics a comparison of two versions shows, in this order, when they have them."""
TABLE_METRICS = KEY_METRICS[:3]
"""The test metrics of the versions table (a row per version has room for few)."""
MAX_CACHED_VERSIONS = 20_000
"""Versions kept per app; the least recently shown go first beyond this."""


@dataclass(frozen=True)
class GateResult:
    """A metric gate a version had to pass when it was registered."""

    gate: str
    observed: float | None
    passed: bool


@dataclass(frozen=True)
class VersionFacts:
    """One version as the model page shows it."""

    version: int
    created: str | None
    metrics: dict[str, float]
    gates: list[GateResult]
    runtime: str
    runtime_detail: str | None
    source: str
    candidate: str | None
    threshold: float | None
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    has_card: bool = False

    @property
    def gates_failed(self) -> int:
        """How many of its gates the version missed."""
        return sum(not gate.passed for gate in self.gates)


def facts_of(version: int, document: dict[str, Any]) -> VersionFacts:
    """The facts of a version from its manifest document (odd or missing fields left out)."""
    compiled = _mapping(document.get("compiled"))
    source = _mapping(document.get("source"))
    is_compiled = compiled.get("status") == "compiled"
    created = document.get("created")
    candidate = document.get("candidate")
    threshold = document.get("threshold")
    files = _mapping(document.get("files"))
    return VersionFacts(
        version=version,
        created=created if isinstance(created, str) else None,
        metrics=_numbers(document.get("metrics")),
        gates=[_gate(entry) for entry in _list(document.get("gates")) if isinstance(entry, dict)],
        runtime=str(compiled.get("runtime") or "onnxruntime") if is_compiled else "scikit-learn",
        runtime_detail=None if is_compiled else _text(compiled.get("reason")),
        source=_source(source),
        candidate=candidate if isinstance(candidate, str) else None,
        threshold=float(threshold) if _is_number(threshold) else None,
        leaderboard=[row for row in _list(document.get("leaderboard")) if isinstance(row, dict)],
        has_card=CARD_FILE in files,
    )


class VersionFactsCache:
    """The facts of versions already read, by (model, version); safe across threads."""

    def __init__(self, registry: ModelRegistry, max_versions: int = MAX_CACHED_VERSIONS) -> None:
        self.registry = registry
        self.max_versions = max_versions
        self._facts: OrderedDict[tuple[str, int], VersionFacts] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, version: int) -> VersionFacts:
        """A version's facts, its manifest read on first use only.

        Raises:
            ArtifactIntegrityError: the manifest is not a JSON object.
        """
        key = (name, version)
        with self._lock:
            found = self._facts.get(key)
            if found is not None:
                self._facts.move_to_end(key)
                return found
        facts = facts_of(version, self._read(name, version))
        with self._lock:
            self._facts[key] = facts
            while len(self._facts) > self.max_versions:
                self._facts.popitem(last=False)
        return facts

    def _read(self, name: str, version: int) -> dict[str, Any]:
        where = f"{name}:{version} {MANIFEST}"
        try:
            document = json.loads(self.registry.read_file(name, version, MANIFEST))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactIntegrityError(f"{where} is not valid JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise ArtifactIntegrityError(f"{where} does not hold a JSON object")
        return document


def _source(source: dict[str, Any]) -> str:
    if not source.get("imported"):
        return "trained"
    kind = _text(source.get("format"))
    if source.get("mlflow"):
        kind = "MLflow" if kind is None else f"MLflow, {kind}"
    return "imported" if kind is None else f"imported ({kind})"


def _gate(entry: dict[str, Any]) -> GateResult:
    observed = entry.get("observed")
    return GateResult(
        gate=str(entry.get("gate") or entry.get("metric") or "gate"),
        observed=float(observed) if _is_number(observed) else None,
        passed=entry.get("passed") is True,
    )


def _numbers(value: Any) -> dict[str, float]:
    return {key: float(v) for key, v in _mapping(value).items() if _is_number(v)}


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
