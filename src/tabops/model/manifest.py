"""The manifest of a model version: typed, versioned, written and read only here.

``manifest.json`` is the last file of a version to be written and the one that says what the
others are (their sha256), what the model predicts (classes, threshold, feature spec) and how
it was made. Every reader goes through ``Manifest``; nothing indexes the JSON by string.

Format 1 is what tabops 0.1.0 wrote (without the ``format`` key). Keys a reader does not
know are kept as they are, so a manifest read and written again loses nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tabops.errors import ArtifactIntegrityError
from tabops.schema import FeatureSpec

FORMAT = 1
"""The manifest format this release writes and the newest it reads."""


class _Section(BaseModel):
    """A part of the manifest: unknown keys survive a round trip."""

    model_config = ConfigDict(extra="allow")


class ClassLabel(_Section):
    """One class of the target: its value in the data and the name shown to people."""

    value: Any
    name: str | None = None

    @property
    def display_name(self) -> str:
        """The name, or the value as text when the project gave none."""
        return str(self.name) if self.name is not None else str(self.value)


class Classes(_Section):
    """The two classes, negative and positive."""

    negative: ClassLabel
    positive: ClassLabel


class DataSummary(_Section):
    """The training table: file name, sha256, rows and positives per split."""

    path: str
    sha256: str
    rows: dict[str, int] = Field(default_factory=dict)
    positives: dict[str, int] = Field(default_factory=dict)
    # Earliest and latest row time of the table (ISO 8601, UTC), when the project has a
    # timestamp column: a backtest marks the periods the version was trained on.
    first_time: str | None = None
    last_time: str | None = None


class GoldenRows(_Section):
    """How many golden rows were stored and how close a reload must score them."""

    rows: int = 0
    tolerance: float = 1e-6


class CompiledGraph(_Section):
    """What compilation produced: status, runtime, precision, and why not when it failed."""

    status: str = "not_compiled"
    runtime: str = "scikit-learn"
    precision: str | None = None
    converter: str | None = None
    rows_checked: int = 0
    max_abs_difference: float | None = None
    tolerance: float | None = None
    seconds: float = 0.0
    reason: str | None = None
    calibration_in_graph: bool = False


class FeatureRequirements(_Section):
    """What serving by entity needs: the store's view, its entity and the model's features."""

    view: str
    entity: str
    timestamp: str | None = None
    names: list[str]
    definitions: list[dict[str, Any]] = Field(default_factory=list)
    fingerprint: str | None = None


class Signature(_Section):
    """The registry's HMAC-SHA256 over the rest of the manifest, and which key made it."""

    algorithm: str
    key_id: str
    value: str


class Manifest(_Section):
    """Everything a registry version records about itself.

    Raises (on validation):
        pydantic.ValidationError: a required key is missing or has the wrong type.
    """

    format: int = FORMAT
    name: str = ""
    version: int = 0
    created: str | None = None
    project: str | None = None
    task: str = "binary_classification"
    target: str | None = Field(
        default=None,
        description="The target column; none for a model imported without one.",
    )
    entity: str | None = None
    timestamp: str | None = None
    classes: Classes
    threshold: float
    threshold_policy: Any = None
    threshold_reason: str | None = None
    operating_points: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict,
        description=(
            "Cut-offs chosen on the validation rows (top shares of scores, target recalls) "
            "and how each does, by rows: {'validation': [...], 'test': [...]}."
        ),
    )
    candidate: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    imbalance: str | None = None
    calibration: dict[str, Any] | None = None
    split: str | None = None
    notes: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    intervals: dict[str, list[float]] = Field(default_factory=dict)
    validation_metrics: dict[str, float] = Field(default_factory=dict)
    confusion: dict[str, int] = Field(default_factory=dict)
    leaderboard: list[dict[str, Any]] = Field(default_factory=list)
    guards: list[dict[str, Any]] = Field(default_factory=list)
    imputation: dict[str, Any] = Field(default_factory=dict)
    importance: list[list[Any]] = Field(default_factory=list)
    gates: list[dict[str, Any]] = Field(default_factory=list)
    feature_spec: FeatureSpec
    rename: dict[str, str] = Field(
        default_factory=dict,
        description="Columns the project renames right after reading a table: input -> feature.",
    )
    features: FeatureRequirements | None = None
    # The project's monitoring section (tabops.monitoring_rules.MonitoringSection) as it was
    # when the version was trained; None for versions of projects without one.
    monitoring: dict[str, Any] | None = None
    data: DataSummary | None = None
    training_seconds: float | None = None
    # Seconds per stage of the run (search, fit, evaluate...), in the order they ran.
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    # The training process's peak resident memory (MiB) by the end of each stage.
    stage_peak_rss_mb: dict[str, float] = Field(default_factory=dict)
    # Training rows the candidate search ran on (a stratified sample of a large table).
    search_rows: int | None = None
    golden: GoldenRows = Field(default_factory=GoldenRows)
    compiled: CompiledGraph | None = None
    # Types the model file holds beyond tabops' allow-list, vetted when the model was
    # imported (tabops.training.importing); empty for a version tabops trained.
    trusted_types: list[str] = Field(default_factory=list)
    # Where an imported model came from: format, file name, sha256, the globals its pickle
    # named, estimator type, "imported": true, an MLflow run id. None for a trained version.
    source: dict[str, Any] | None = None
    library_versions: dict[str, str] = Field(default_factory=dict)
    git_commit: str | None = None
    files: dict[str, str] = Field(default_factory=dict)
    # Set by a registry with a signing key; covers every other key (tabops.registry.signing).
    signature: Signature | None = None

    @classmethod
    def from_json(cls, raw: bytes | str, where: str = "manifest.json") -> Manifest:
        """Read a stored manifest.

        Raises:
            ArtifactIntegrityError: not JSON, written by a newer tabops, or missing a key.
        """
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactIntegrityError(f"{where} is not valid JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise ArtifactIntegrityError(f"{where} does not hold a JSON object")
        found = document.get("format", 1)
        if not isinstance(found, int) or found > FORMAT:
            raise ArtifactIntegrityError(
                f"{where} has format {found!r}; this tabops reads formats up to {FORMAT}: "
                "upgrade tabops to load it"
            )
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
                for error in exc.errors()[:5]
            )
            raise ArtifactIntegrityError(f"{where} is not a valid manifest: {problems}") from exc

    def to_json(self) -> bytes:
        """The manifest as stored: indented JSON, keys in a fixed order."""
        return json.dumps(self.document(), indent=2, default=str).encode() + b"\n"

    def document(self) -> dict[str, Any]:
        """The manifest as plain JSON values (what the API and ``--json`` show)."""
        return self.model_dump(mode="json", exclude_unset=True)


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model and its manifest."""

    name: str
    version: int
    manifest: Manifest

    @property
    def ref(self) -> str:
        """``name:version``, the form the CLI accepts."""
        return f"{self.name}:{self.version}"
