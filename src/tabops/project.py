"""The project file ``tabops.yaml``: data, target, classes, feature spec, training and gates."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tabops.dataset import read_table
from tabops.errors import (
    DataError,
    InvalidRequestError,
    PathNotAllowedError,
    Problem,
    ProjectError,
)
from tabops.features import compute_features
from tabops.features.definitions import FeatureDefinitions, WindowFeature
from tabops.monitoring_rules import MonitoringSection
from tabops.names import MODEL_NAME_PATTERN
from tabops.schema import ColumnSpec, FeatureSpec, Kind, Role

PROJECT_FILE = "tabops.yaml"
MAX_PROJECT_BYTES = 1024**2
# An error lists at most this many problems of a project file.
MAX_PROBLEMS = 20
# lightgbm and xgboost need the 'boost' extra, so no default list names them.
CandidateName = Literal[
    "logistic_regression",
    "random_forest",
    "extra_trees",
    "hist_gradient_boosting",
    "lightgbm",
    "xgboost",
    "voting",
]
DEFAULT_CANDIDATES: tuple[CandidateName, ...] = (
    "logistic_regression",
    "random_forest",
    "extra_trees",
    "hist_gradient_boosting",
    "voting",
)
_GATE = re.compile(r"^\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
METRIC_NAMES = (
    "roc_auc",
    "pr_auc",
    "f1",
    "precision",
    "recall",
    "mcc",
    "brier",
    "log_loss",
    "accuracy",
)


class MinRecall(BaseModel):
    """The highest threshold whose validation recall reaches a floor."""

    model_config = ConfigDict(extra="forbid")

    min_recall: float = Field(gt=0, le=1)


class MinPrecision(BaseModel):
    """The lowest threshold whose validation precision reaches a floor."""

    model_config = ConfigDict(extra="forbid")

    min_precision: float = Field(gt=0, le=1)


class Costs(BaseModel):
    """What each kind of mistake costs, in any one unit."""

    model_config = ConfigDict(extra="forbid")

    false_positive: float = Field(ge=0)
    false_negative: float = Field(ge=0)


class MinCost(BaseModel):
    """The threshold with the lowest total cost on validation rows."""

    model_config = ConfigDict(extra="forbid")

    cost: Costs


ThresholdPolicy = Literal["max_f1"] | MinRecall | MinPrecision | MinCost


class TrainSettings(BaseModel):
    """How a project trains: splits, imbalance, candidates, threshold and calibration."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 42
    test_size: float = Field(default=0.2, gt=0, lt=0.5)
    validation_size: float = Field(default=0.2, gt=0, lt=0.5)
    split: Literal["stratified", "time", "group"] = Field(
        default="stratified",
        description="time needs the project's timestamp column, group its entity column.",
    )
    test_start: str | None = Field(
        default=None,
        description="Time split: rows at or after this date are test rows "
        "(default: the latest test_size share).",
    )
    dedupe: Literal["none", "keep_last"] = Field(
        default="none", description="keep_last: only each entity's latest row (pseudo-replicates)."
    )
    drop_duplicate_rows: bool = False
    imbalance: Literal["class_weight", "undersample", "smote", "none"] = "class_weight"
    cv_folds: int = Field(default=5, ge=2, le=20)
    candidates: list[CandidateName] = Field(
        default_factory=lambda: list(DEFAULT_CANDIDATES), min_length=1
    )
    search_settings: int | None = Field(
        default=None,
        ge=1,
        description="Settings tried per candidate: its first (default) setting, then the rest "
        "of its grid in an order drawn from the seed; every setting when unset.",
    )
    search_rows: int | None = Field(
        default=10_000,
        ge=100,
        description="Search candidates' settings on a stratified sample of this many training "
        "rows when there are more (then refit the chosen setting on all of them); every row "
        "when unset.",
    )
    time_budget_s: float = Field(
        default=1800.0,
        gt=0,
        description="A safety cap on the whole run: no step starts that its own estimate says "
        "would not finish within it, and the run says which were skipped. Within it, training "
        "is the same on any machine.",
    )
    leak_action: Literal["warn", "exclude", "fail"] = Field(
        default="warn",
        description="What a probable leak (a feature that alone separates the classes with ROC "
        "AUC above 0.95) does: a warning, the feature excluded from training, or no model.",
    )
    threshold: ThresholdPolicy = "max_f1"
    calibration: Literal["auto", "none", "sigmoid", "isotonic"] = "auto"
    refit: bool | None = Field(
        default=None,
        description="Refit the chosen setting on train + validation rows once the threshold "
        "is chosen (the test rows stay unseen). Unset: only when the search ran on every "
        "training row; on a table large enough to be sampled, a quarter more rows adds little "
        "and a second full fit costs as much as the first.",
    )
    bootstrap_resamples: int = Field(default=1000, ge=0, le=10_000)
    golden_rows: int = Field(default=200, ge=1, le=10_000)


class Gate(BaseModel):
    """One metric gate, such as ``roc_auc >= 0.75``, checked on held-out test rows."""

    metric: str
    operator: Literal[">=", "<=", ">", "<"]
    value: float

    def passes(self, observed: float) -> bool:
        """Whether an observed metric value satisfies the gate."""
        return {
            ">=": observed >= self.value,
            "<=": observed <= self.value,
            ">": observed > self.value,
            "<": observed < self.value,
        }[self.operator]

    def __str__(self) -> str:
        return f"{self.metric} {self.operator} {self.value:g}"


class Project(BaseModel):
    """A tabops project: one dataset, one binary target, one model name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=MODEL_NAME_PATTERN)
    data: str = Field(description="Path of the training table, relative to the project file.")
    read_options: dict[str, Any] = Field(default_factory=dict)
    rename: dict[str, str] = Field(
        default_factory=dict, description="Columns renamed right after reading: old -> new."
    )
    target: str
    entity: str | None = Field(default=None, description="Column naming the entity of a row.")
    timestamp: str | None = Field(default=None, description="Column with the time of a row.")
    positive_class: str | int | bool
    class_names: dict[str, str] = Field(description="Target value -> human-readable class name.")
    schema_: FeatureSpec = Field(alias="schema")
    features: FeatureDefinitions | None = Field(
        default=None, description="Derived features, computed before training and serving."
    )
    train: TrainSettings = Field(default_factory=TrainSettings)
    gates: dict[str, str] = Field(default_factory=dict)
    monitoring: MonitoringSection | None = Field(
        default=None, description="Drift thresholds, the check window and alert rules."
    )

    @field_validator("class_names", mode="before")
    @classmethod
    def _stringify_class_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(key): name for key, name in value.items()}
        return value

    @field_validator("gates")
    @classmethod
    def _check_gates(cls, value: dict[str, str]) -> dict[str, str]:
        for metric, rule in value.items():
            if metric not in METRIC_NAMES:
                raise ValueError(
                    f"unknown metric {metric!r}; choose from {', '.join(METRIC_NAMES)}"
                )
            if not _GATE.match(str(rule)):
                raise ValueError(f"gate {metric}: {rule!r} is not like '>=0.75'")
        return value

    @model_validator(mode="after")
    def _add_derived_columns(self) -> Project:
        """Give each derived feature a spec column, unless the schema lists it already."""
        if self.features is None:
            return self
        listed = {column.name for column in self.schema_.columns}
        added = [
            _derived_column(feature, self.timestamp)
            for feature in self.features.all
            if feature.name not in listed
        ]
        if added:
            self.schema_ = FeatureSpec(columns=[*self.schema_.columns, *added])
        return self

    @property
    def view(self) -> str:
        """The online store's name for this project's features."""
        if self.features is not None and self.features.view:
            return self.features.view
        return self.name

    @model_validator(mode="after")
    def _check_columns(self) -> Project:
        names = {column.name for column in self.schema_.columns}
        for role in ("target", "entity", "timestamp"):
            column = getattr(self, role)
            if column is not None and column not in names:
                raise ValueError(f"{role} column {column!r} is not in the schema")
        for role in ("entity", "timestamp"):
            column = getattr(self, role)
            if column is not None and column in self.schema_.feature_names:
                raise ValueError(f"{role} column {column!r} must not be a feature")
        if self.target in self.schema_.feature_names:
            raise ValueError(f"target column {self.target!r} must not be a feature")
        if self.train.split == "time" and self.timestamp is None:
            raise ValueError("train.split 'time' needs a timestamp column")
        if self.train.split == "group" and self.entity is None:
            raise ValueError("train.split 'group' needs an entity column")
        if self.train.dedupe == "keep_last" and self.entity is None:
            raise ValueError("train.dedupe 'keep_last' needs an entity column")
        features = self.schema_.feature_names
        unknown = self.monitoring.unknown_features(features) if self.monitoring else []
        if unknown:
            raise ValueError(f"monitoring.alerts name features not in the schema: {unknown}")
        return self

    def parsed_gates(self) -> list[Gate]:
        """The gates as objects, in file order."""
        gates = []
        for metric, rule in self.gates.items():
            match = _GATE.match(str(rule))
            assert match is not None  # checked by the validator
            operator: Any = match.group(1)
            gates.append(Gate(metric=metric, operator=operator, value=float(match.group(2))))
        return gates


def _derived_column(feature: Any, timestamp: str | None) -> ColumnSpec:
    """The spec of a derived feature: a nullable number, or a flag, or an excluded date."""
    is_date = isinstance(feature, WindowFeature) and feature.function in ("first", "last")
    if is_date and feature.column is not None and feature.column == timestamp:
        return ColumnSpec(
            name=feature.name,
            role=Role.EXCLUDED,
            kind=Kind.DATETIME,
            nullable=True,
            reason="a date, read by other derived features",
        )
    kind = Kind.NUMERIC
    if getattr(feature, "kind", None) in ("flag", "is_missing"):
        kind = Kind.BOOLEAN
    elif isinstance(feature, WindowFeature) and feature.function == "count":
        kind = Kind.INTEGER
    nullable = getattr(feature, "kind", None) != "is_missing"
    return ColumnSpec(name=feature.name, kind=kind, nullable=nullable, impute=feature.impute)


def load_project(path: Path) -> tuple[Project, Path]:
    """Read and check a project file; returns the project and the folder paths are relative to.

    No message quotes the file's text: the path may have come over the network, and the
    file may not be a project file at all. A YAML error gives its line and column, a
    validation error the paths of at most ``MAX_PROBLEMS`` fields.

    Raises:
        ProjectError: the file is missing, unreadable, not YAML, or breaks the project model.
    """
    if path.is_dir():
        path = path / PROJECT_FILE
    if not path.is_file():
        raise ProjectError(f"no project file at {path}; create one with 'tabops init DATA'")
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise ProjectError(f"{path} is not a tabops project file (not a mapping of settings)")
    try:
        project = Project.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        problems = [
            Problem(".".join(str(part) for part in error["loc"]), error["msg"])
            for error in errors[:MAX_PROBLEMS]
        ]
        more = f" ({len(errors)} problems, the first {MAX_PROBLEMS} listed)"
        message = f"{path} is not a valid project file{more if len(errors) > MAX_PROBLEMS else ''}"
        raise ProjectError(message, problems) from exc
    return project, path.parent


def _read_yaml(path: Path) -> object:
    """The document of a YAML file; errors name a line and column, never the text."""
    try:
        if path.stat().st_size > MAX_PROJECT_BYTES:
            raise ProjectError(f"{path} is larger than a project file may be (1 MiB)")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProjectError(f"{path} is not a tabops project file (not UTF-8 text)") from exc
    except OSError as exc:
        raise ProjectError(f"cannot read {path}: {exc.strerror or 'read error'}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProjectError(f"{path} is not valid YAML{where}") from exc
    except (yaml.YAMLError, RecursionError) as exc:
        raise ProjectError(f"{path} is not valid YAML") from exc


def save_project(project: Project, path: Path) -> None:
    """Write a project file atomically (temp file, then rename)."""
    document = project.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temp_name, path)


def confine_path(
    path: Path, roots: Sequence[Path], field: str, private: Sequence[Path] = ()
) -> Path:
    """The real path of ``path`` when it lies under one of ``roots`` and under no ``private``.

    For paths that come over the network. Symbolic links and ``..`` are resolved before the
    check, and nothing is opened or tested for existence first, so a refusal says nothing
    about what exists outside the roots. A relative path starts from the first root.

    Args:
        path: The path as the caller sent it.
        roots: The folders that may be read.
        field: The request field that named the path, for the error's problem.
        private: Folders never to be read, even inside a root (the tabops home).

    Raises:
        InvalidRequestError: the path holds a NUL character.
        PathNotAllowedError: no roots are set, or the path lies outside them or in a
            private folder.
    """
    if not roots:
        raise PathNotAllowedError(
            "no folder may be read over the API; set TABOPS_PROJECT_ROOTS to the folders "
            "holding projects and their tables",
            [Problem(field, "no project roots are configured")],
        )
    real_roots = [Path(os.path.realpath(root)) for root in roots]
    try:
        real = Path(os.path.realpath(real_roots[0] / path))
    except ValueError as exc:
        raise InvalidRequestError(
            f"{field} is not a valid path", [Problem(field, "holds a NUL character")]
        ) from exc
    if not any(real.is_relative_to(root) for root in real_roots):
        raise PathNotAllowedError(
            f"{field} is outside the project roots", [Problem(field, "outside the project roots")]
        )
    if any(real.is_relative_to(os.path.realpath(folder)) for folder in private):
        raise PathNotAllowedError(
            f"{field} is inside tabops' own folder",
            [Problem(field, "inside tabops' own folder, which training may not read")],
        )
    return real


def resolve_data_path(project: Project, project_dir: Path, override: Path | None = None) -> Path:
    """The training table: the override, else the project's path relative to its folder."""
    if override is not None:
        return override
    path = Path(project.data).expanduser()
    return path if path.is_absolute() else project_dir / path


def read_project_table(project: Project, path: Path) -> pd.DataFrame:
    """A table read with the project's read options and renames, derived features added.

    Raises:
        DataError: the table is unreadable, lacks a column the project renames, or lacks a
            column a derived feature reads.
    """
    frame = read_table(path, project.read_options)
    missing = [name for name in project.rename if name not in frame.columns]
    if missing:
        raise DataError(f"{path.name} has no column(s) {missing} to rename")
    frame = frame.rename(columns=project.rename)
    if project.features is not None:
        frame = compute_features(frame, project.features, project.entity, project.timestamp)
    return frame
