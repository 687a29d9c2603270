"""A loaded, verified model version that turns records into predictions."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from tabops.artifact import (
    GOLDEN_FILE,
    GOLDEN_PROBABILITY,
    MODEL_FILE,
    REFERENCE_FILE,
    load_model,
    parquet_to_frame,
)
from tabops.errors import ArtifactIntegrityError, InvalidInputError, Problem
from tabops.registry.versions import ModelRegistry, ModelVersion
from tabops.schema import FeatureSpec, Kind, coerce_frame, python_value

_MAX_PROBLEMS = 20
_EXAMPLE_ROWS = 50


@dataclass(frozen=True)
class Prediction:
    """The decision for one record."""

    label: Any
    class_name: str
    probability: float


class Predictor:
    """One model version, checked against its hashes and golden rows, ready to predict."""

    def __init__(
        self, version: ModelVersion, pipeline: Any, examples: pd.DataFrame | None = None
    ) -> None:
        self.version = version
        self.pipeline = pipeline
        self.examples = examples if examples is not None else pd.DataFrame()
        manifest = version.manifest
        self.spec = FeatureSpec.model_validate(manifest["feature_spec"])
        self.threshold = float(manifest["threshold"])
        classes = manifest["classes"]
        self.negative = (classes["negative"]["value"], _class_name(classes["negative"]))
        self.positive = (classes["positive"]["value"], _class_name(classes["positive"]))
        self.loaded_at = datetime.now(UTC)

    @property
    def name(self) -> str:
        """The model's name."""
        return self.version.name

    @classmethod
    def load(cls, registry: ModelRegistry, name: str, ref: str | int | None = None) -> Predictor:
        """Load a version, verify every file's sha256 and re-predict its golden rows.

        Raises:
            ModelNotFoundError: no such model.
            VersionNotFoundError: no such version or alias.
            ArtifactIntegrityError: a file was changed or the golden rows no longer match.
        """
        version = registry.get_version(name, ref)
        contents: dict[str, bytes] = {}
        for file, expected in version.manifest["files"].items():
            try:
                data = registry.read_file(name, version.version, file)
            except FileNotFoundError as exc:
                raise ArtifactIntegrityError(f"{version.ref}: file {file} is missing") from exc
            if hashlib.sha256(data).hexdigest() != expected:
                raise ArtifactIntegrityError(f"{version.ref}: {file} does not match its sha256")
            contents[file] = data
        examples = None
        if REFERENCE_FILE in contents:
            examples = parquet_to_frame(contents[REFERENCE_FILE]).head(_EXAMPLE_ROWS)
        predictor = cls(version, load_model(contents[MODEL_FILE]), examples)
        predictor.check_golden(parquet_to_frame(contents[GOLDEN_FILE]))
        return predictor

    def check_golden(self, golden: pd.DataFrame) -> None:
        """Refuse the version unless it reproduces the probabilities recorded at training.

        Raises:
            ArtifactIntegrityError: any golden row differs by more than the tolerance.
        """
        tolerance = float(self.version.manifest.get("golden", {}).get("tolerance", 1e-6))
        expected = golden[GOLDEN_PROBABILITY].to_numpy()
        observed = self.score_frame(golden.drop(columns=[GOLDEN_PROBABILITY]))
        difference = float(np.max(np.abs(observed - expected))) if len(expected) else 0.0
        if not difference <= tolerance:
            raise ArtifactIntegrityError(
                f"{self.version.ref}: golden rows differ from training by up to {difference:.3g} "
                f"(tolerance {tolerance:g}); refusing to serve it"
            )

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Positive-class probabilities of the rows of a frame holding the feature columns."""
        probabilities: np.ndarray = self.pipeline.predict_proba(coerce_frame(frame, self.spec))[
            :, 1
        ]
        return probabilities

    def decide(self, probability: float) -> Prediction:
        """The label and class name for one probability at the version's threshold."""
        label, class_name = self.positive if probability >= self.threshold else self.negative
        return Prediction(label=label, class_name=class_name, probability=float(probability))

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """Predictions for records already validated against the spec (absent = missing)."""
        frame = pd.DataFrame.from_records(
            [{name: record.get(name) for name in self.spec.feature_names} for record in records],
            columns=self.spec.feature_names,
        )
        return [self.decide(p) for p in self.score_frame(frame)]

    def example(self, index: int = 0) -> dict[str, Any]:
        """A real record of the training data (features only), for forms and docs.

        Raises:
            IndexError: no example row at ``index``.
        """
        record = {}
        for column in self.spec.features:
            value = python_value(self.examples[column.name].iloc[index])
            if column.kind in (Kind.INTEGER, Kind.BOOLEAN) and isinstance(value, float):
                value = int(value) if value.is_integer() else value
            record[column.name] = value
        return record

    def check_frame(self, frame: pd.DataFrame, first_row: int = 1) -> None:
        """Check a file's rows before scoring: columns present, numbers numeric, no gaps.

        Raises:
            InvalidInputError: naming the missing columns or the first bad cells.
        """
        missing = [name for name in self.spec.feature_names if name not in frame.columns]
        if missing:
            raise InvalidInputError(
                f"missing columns: {', '.join(missing)}",
                [Problem(name, "column is missing") for name in missing],
            )
        problems: list[Problem] = []
        for column in self.spec.features:
            series = frame[column.name]
            if not column.nullable:
                for row in np.flatnonzero(series.isna().to_numpy())[:_MAX_PROBLEMS]:
                    problems.append(Problem(f"row {row + first_row}.{column.name}", "is empty"))
            if column.kind is not Kind.CATEGORICAL:
                numbers = pd.to_numeric(series, errors="coerce")
                bad = series.notna() & (numbers.isna() | ~np.isfinite(numbers.astype(float)))
                for row in np.flatnonzero(bad.to_numpy())[:_MAX_PROBLEMS]:
                    value = series.iloc[row]
                    problems.append(
                        Problem(
                            f"row {row + first_row}.{column.name}", f"{value!r} is not a number"
                        )
                    )
        if problems:
            raise InvalidInputError(
                f"{len(problems)} invalid value(s) in the input", problems[:_MAX_PROBLEMS]
            )


def _class_name(entry: Mapping[str, Any]) -> str:
    name = entry.get("name")
    return str(name) if name is not None else str(entry["value"])
