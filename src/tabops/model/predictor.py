"""A loaded, verified model version that turns records into predictions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from tabops.errors import ArtifactIntegrityError, InvalidInputError, Problem
from tabops.model.column_graph import ColumnScorer
from tabops.model.compiled import COMPILE_TOLERANCE, CompiledScorer, split_model
from tabops.model.decoder import LeanDecoder
from tabops.model.files import (
    GOLDEN_FILE,
    GOLDEN_PROBABILITY,
    MODEL_FILE,
    ONNX_FILE,
    REFERENCE_FILE,
    load_model,
    parquet_to_frame,
)
from tabops.model.manifest import ModelVersion
from tabops.schema import Kind, coerce_frame, python_value
from tabops.validation import FeatureValidator, RowProblem

SCORING_FILES = (MODEL_FILE, ONNX_FILE, GOLDEN_FILE)
"""The files of a version a predictor is built from (the reference sample is optional)."""
_MAX_PROBLEMS = 20
_EXAMPLE_ROWS = 50


class VersionSource(Protocol):
    """Where versions are read from: the registry, or anything that answers like it."""

    def get_version(
        self, name: str, ref: str | int | None = None, *, verify_signature: bool = False
    ) -> ModelVersion:
        """A version by number or alias (production when None), its signature checked if asked."""
        ...

    def read_file(self, name: str, version: int, file: str) -> bytes:
        """The bytes of one file of a version; ``FileNotFoundError`` when absent."""
        ...


@dataclass(frozen=True)
class Prediction:
    """The decision for one record."""

    label: Any
    class_name: str
    probability: float


class Predictor:
    """One model version, checked against its hashes and golden rows, ready to predict.

    Records are encoded without pandas, then scored by the version's ONNX graph when it has
    one that reproduces scikit-learn, else by the scikit-learn pipeline itself. An imported
    version (no encoder) is scored by its column-input graph (``ColumnScorer``), fed per
    column straight from the records, when it has one.
    """

    def __init__(
        self,
        version: ModelVersion,
        pipeline: Any,
        examples: pd.DataFrame | None = None,
        graph: bytes | None = None,
        threads: int = 1,
    ) -> None:
        self.version = version
        self.pipeline = pipeline
        self.examples = examples if examples is not None else pd.DataFrame()
        self.parts = split_model(pipeline)
        self.compiled: CompiledScorer | None = None
        self.columns: ColumnScorer | None = None
        manifest = version.manifest
        compiled = manifest.compiled
        self.spec = manifest.feature_spec
        self.runtime_detail: str | None = compiled.reason if compiled is not None else None
        if graph is not None and self.parts is None and compiled is not None:
            try:
                self.columns = ColumnScorer(graph, self.spec, threads)
            except Exception as exc:  # any runtime refusal: serve via sklearn
                self.runtime_detail = _graph_refused(exc)
        elif graph is not None and self.parts is not None and compiled is not None:
            calibrator = None if compiled.calibration_in_graph else self.parts.calibrator
            try:
                self.compiled = CompiledScorer(
                    graph, compiled.precision or "float", calibrator, threads
                )
            except Exception as exc:  # any runtime refusal: serve via sklearn
                self.runtime_detail = _graph_refused(exc)
        elif self.parts is None and manifest.source is None:
            self.runtime_detail = "registered before models were compiled"
        self.feature_names: list[str] = self.spec.feature_names
        self.validator = FeatureValidator(self.spec)
        self.renames = dict(manifest.rename)
        self.lean = LeanDecoder(self.spec, self.parts.encoder) if self.parts is not None else None
        self.threshold = float(manifest.threshold)
        classes = manifest.classes
        self.negative = (classes.negative.value, classes.negative.display_name)
        self.positive = (classes.positive.value, classes.positive.display_name)
        self.decision_basis = (
            version.name,
            version.version,
            self.threshold,
            self.positive,
            self.negative,
        )
        """(model, version, threshold, positive and negative (label, class name))."""
        self.loaded_at = datetime.now(UTC)
        self.registry: VersionSource | None = None  # set by ``load``; ``read_files`` uses it

    @property
    def name(self) -> str:
        """The model's name."""
        return self.version.name

    @property
    def runtime(self) -> str:
        """What scores requests: ``onnxruntime`` or ``scikit-learn``."""
        compiled = self.compiled is not None or self.columns is not None
        return "onnxruntime" if compiled else "scikit-learn"

    @classmethod
    def load(
        cls,
        registry: VersionSource,
        name: str,
        ref: str | int | None = None,
        *,
        threads: int = 1,
    ) -> Predictor:
        """Load a version, verify its signature, every file's sha256 and its golden rows.

        The manifest signature is checked when the registry has a signing key.

        ``threads`` is onnxruntime's intra-op thread count for the compiled graph.

        Raises:
            ModelNotFoundError: no such model.
            VersionNotFoundError: no such version or alias.
            ArtifactIntegrityError: the manifest signature is missing or wrong, a file was
                changed, or the golden rows no longer match.
        """
        version = registry.get_version(name, ref, verify_signature=True)
        contents = _read_files(registry, version, version.manifest.files)
        predictor = cls.from_files(version, contents, threads=threads)
        predictor.registry = registry
        return predictor

    @classmethod
    def from_files(
        cls, version: ModelVersion, files: Mapping[str, bytes], *, threads: int = 1
    ) -> Predictor:
        """Build a version from its files' contents, checked as ``load`` checks them.

        This is how another process (a Dask worker, a Spark executor) rebuilds a predictor
        from bytes shipped to it, with no access to the registry.

        Raises:
            ArtifactIntegrityError: a file the model needs is absent, a file does not match
                its sha256 in the manifest, or the golden rows no longer match.
        """
        expected = version.manifest.files
        for file, data in files.items():
            if file not in expected:
                raise ArtifactIntegrityError(f"{version.ref} has no file {file}")
            if hashlib.sha256(data).hexdigest() != expected[file]:
                raise ArtifactIntegrityError(f"{version.ref}: {file} does not match its sha256")
        for file in SCORING_FILES:
            if file in expected and file not in files:
                raise ArtifactIntegrityError(f"{version.ref}: file {file} is missing")
        examples = None
        if REFERENCE_FILE in files:
            examples = parquet_to_frame(files[REFERENCE_FILE]).head(_EXAMPLE_ROWS)
        model = load_model(files[MODEL_FILE], version.manifest.trusted_types)
        predictor = cls(version, model, examples, files.get(ONNX_FILE), threads)
        predictor.check_golden(parquet_to_frame(files[GOLDEN_FILE]))
        return predictor

    def read_files(self) -> dict[str, bytes]:
        """The files ``from_files`` needs to rebuild this version, read again from its registry.

        Raises:
            ArtifactIntegrityError: a file is missing from the registry.
            TypeError: the predictor was not loaded from a registry.
        """
        if self.registry is None:
            raise TypeError("this predictor was not loaded from a registry")
        files = [file for file in self.version.manifest.files if file in SCORING_FILES]
        return _read_files(self.registry, self.version, files)

    def check_golden(self, golden: pd.DataFrame) -> None:
        """Refuse the version unless it reproduces the probabilities recorded at training.

        Raises:
            ArtifactIntegrityError: any golden row differs by more than the tolerance.
        """
        tolerance = self.version.manifest.golden.tolerance
        expected = golden[GOLDEN_PROBABILITY].to_numpy()
        rows = golden.drop(columns=[GOLDEN_PROBABILITY])
        features = coerce_frame(rows, self.spec)
        observed = self.pipeline.predict_proba(features)[:, 1]
        difference = _max_difference(observed, expected)
        if not difference <= tolerance:
            raise ArtifactIntegrityError(
                f"{self.version.ref}: golden rows differ from training by up to {difference:.3g} "
                f"(tolerance {tolerance:g}); refusing to serve it"
            )
        if self.columns is not None:
            self._check_column_graph(features, expected)
        if self.compiled is not None and self.parts is not None:
            try:
                fast = self.compiled.score(self.parts.encoder.transform(rows))
            except Exception as exc:  # a graph that cannot run is not served
                self.compiled = None
                self.runtime_detail = _graph_refused(exc)
                return
            difference = _max_difference(fast, expected)
            if not difference <= COMPILE_TOLERANCE:
                self.compiled = None
                self.runtime_detail = (
                    f"the compiled graph differs from scikit-learn here by up to "
                    f"{difference:.3g} on the golden rows; serving through scikit-learn"
                )

    def _check_column_graph(self, features: pd.DataFrame, expected: np.ndarray) -> None:
        """Drop the column graph unless it scores the golden rows as scikit-learn does."""
        scorer = self.columns
        if scorer is None:
            return
        compiled = self.version.manifest.compiled
        tolerance = compiled.tolerance if compiled and compiled.tolerance else COMPILE_TOLERANCE
        try:
            arrays = scorer.arrays({name: features[name].to_numpy() for name in self.feature_names})
            mask = scorer.scorable(arrays)
            fast = scorer.run({name: values[mask] for name, values in arrays.items()})
        except Exception as exc:  # a graph that cannot run is not served
            self.columns = None
            self.runtime_detail = _graph_refused(exc)
            return
        difference = _max_difference(fast, expected[mask])
        if not difference <= tolerance:
            self.columns = None
            self.runtime_detail = (
                f"the compiled graph differs from scikit-learn here by up to "
                f"{difference:.3g} on the golden rows; serving through scikit-learn"
            )

    def score_encoded(self, encoded: np.ndarray) -> np.ndarray:
        """Positive-class probabilities of rows already through the version's encoder."""
        if self.compiled is not None:
            return self.compiled.score(encoded)
        if self.parts is None:
            raise TypeError("this version has no encoder; score frames instead")
        probabilities: np.ndarray = self.parts.body.predict_proba(encoded)[:, 1]
        if self.parts.calibrator is not None:
            probabilities = self.parts.calibrator.transform(probabilities)
        return probabilities

    def encode_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Validated records as the encoder's matrix (no pandas)."""
        if self.parts is None:
            raise TypeError("this version has no encoder; score frames instead")
        return self.parts.encoder.encode_records(records)

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Positive-class probabilities of the rows of a frame holding the feature columns."""
        if self.parts is not None:
            return self.score_encoded(self.parts.encoder.transform(frame))
        features = coerce_frame(frame, self.spec)
        if self.columns is not None and len(features):
            columns = {name: features[name].to_numpy() for name in self.feature_names}
            return self.columns.score(columns, lambda rows: self._score_sklearn(features[rows]))
        return self._score_sklearn(features)

    def _score_sklearn(self, features: pd.DataFrame) -> np.ndarray:
        """Positive-class probabilities from the scikit-learn model, of coerced features."""
        probabilities: np.ndarray = self.pipeline.predict_proba(features)[:, 1]
        return probabilities

    def decide_positive(self, probabilities: Sequence[float] | np.ndarray) -> list[bool]:
        """Which probabilities are decided positive: at or above the version's threshold.

        This is the one place where a probability becomes a label (in numpy for an array,
        which is faster from a few dozen rows; in Python for a list, faster for a few).
        """
        threshold = self.threshold
        if isinstance(probabilities, np.ndarray):
            positive: list[bool] = (probabilities >= threshold).tolist()
            return positive
        return [probability >= threshold for probability in probabilities]

    def decide(self, probability: float) -> Prediction:
        """The label and class name for one probability at the version's threshold."""
        [positive] = self.decide_positive([probability])
        label, class_name = self.positive if positive else self.negative
        return Prediction(label=label, class_name=class_name, probability=float(probability))

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Positive-class probabilities of validated records (absent = missing).

        Through the encoder, or as a frame for a version without one.
        """
        if self.parts is not None:
            return self.score_encoded(self.encode_records(records))
        if self.columns is not None and records:
            names = self.feature_names
            columns = {name: [record.get(name) for record in records] for name in names}
            return self.columns.score(
                columns, lambda rows: self._score_records_sklearn(records, rows)
            )
        return self._score_records_sklearn(records)

    def _score_records_sklearn(
        self, records: Sequence[Mapping[str, Any]], rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Records (those ``rows`` selects, if given) as a frame through scikit-learn."""
        if rows is not None:
            records = [record for record, chosen in zip(records, rows, strict=True) if chosen]
        frame = pd.DataFrame.from_records(
            [{name: record.get(name) for name in self.feature_names} for record in records],
            columns=self.feature_names,
        )
        return self._score_sklearn(coerce_frame(frame, self.spec))

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """Predictions for records already validated against the spec (absent = missing)."""
        probabilities = self.score_records(records).tolist()
        positives = self.decide_positive(probabilities)
        return [
            Prediction(*(self.positive if positive else self.negative), probability)
            for positive, probability in zip(positives, probabilities, strict=True)
        ]

    def predict_record(self, record: Mapping[str, Any]) -> Prediction:
        """The prediction for one validated record: the lean single-row path."""
        return self.predict_records((record,))[0]

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
        """Check a file's rows before scoring: columns present, every value fits the spec.

        Raises:
            InvalidInputError: naming the missing columns or the first bad cells.
        """
        _invalid, problems = self.invalid_rows(frame, first_row)
        if problems:
            raise InvalidInputError(
                f"{len(problems)} invalid value(s) in the input",
                [problem.as_problem() for problem in problems[:_MAX_PROBLEMS]],
            )

    def as_features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A table as read from its source, with the project's renames applied.

        ``tabops predict`` so takes the raw data as shipped; nothing is copied when no
        column needs renaming.
        """
        renames = {old: new for old, new in self.renames.items() if old in frame.columns}
        return frame.rename(columns=renames) if renames else frame

    def require_columns(self, frame: pd.DataFrame) -> None:
        """Refuse a frame that lacks a feature column (no row of it can be scored).

        Columns the project renames count under either name.

        Raises:
            InvalidInputError: naming every missing column.
        """
        missing = self.validator.missing_columns(self.as_features(frame))
        if missing:
            raise InvalidInputError(
                f"missing columns: {', '.join(missing)}",
                [Problem(name, "column is missing") for name in missing],
            )

    def invalid_rows(
        self, frame: pd.DataFrame, first_row: int = 1
    ) -> tuple[np.ndarray, list[RowProblem]]:
        """Which rows break the spec (a boolean mask) and every problem, by row and column.

        Rows are numbered from ``first_row``; the rules are ``tabops.validation``'s, read
        as a file's cells.

        Raises:
            InvalidInputError: feature columns are missing (no row can be scored).
        """
        self.require_columns(frame)
        found = self.validator.check_frame(frame, notes=False)
        problems = [
            RowProblem(row + first_row, column, message)
            for row, column, _check, message, _value in found.problems
        ]
        return found.invalid, problems


def _read_files(
    registry: VersionSource, version: ModelVersion, files: Iterable[str]
) -> dict[str, bytes]:
    contents: dict[str, bytes] = {}
    for file in files:
        try:
            contents[file] = registry.read_file(version.name, version.version, file)
        except FileNotFoundError as exc:
            raise ArtifactIntegrityError(f"{version.ref}: file {file} is missing") from exc
    return contents


def _graph_refused(exc: Exception) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"onnxruntime cannot run the compiled graph here ({reason[:200]}); "
        "serving through scikit-learn"
    )


def _max_difference(observed: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(observed - expected))) if len(expected) else 0.0
