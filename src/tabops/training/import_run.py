"""An imported model run on its sample: checked against it, wrapped, and measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tabops.errors import DataError, ModelImportError, Problem
from tabops.model.imported import wrap_imported
from tabops.project import Gate
from tabops.schema import FeatureSpec, Kind, coerce_frame, python_value
from tabops.training.evaluate import EvaluationReport, GateResult, check_gates, evaluate_model
from tabops.training.import_schema import import_spec, model_columns
from tabops.training.import_source import ModelSource
from tabops.training.threshold import operating_points

if TYPE_CHECKING:
    from tabops.model.foreign import ForeignModel
    from tabops.training.importing import ImportOptions

GOLDEN_TOLERANCE = 1e-9
"""How close a reload must score an imported version's golden rows: users hold its model."""
_RESAMPLES = 1_000
_SEED = 42
_DEFAULT_THRESHOLD = 0.5
_SERVED_TYPES = "numbers as float64, categories as text, gaps in text as NaN"


@dataclass
class SampleRun:
    """The stored model, its spec, and its probabilities on every row of the sample."""

    frame: pd.DataFrame
    spec: FeatureSpec
    model: Any
    features: pd.DataFrame
    probabilities: np.ndarray
    classes: tuple[Any, Any]  # negative, positive
    class_names: tuple[str, str]
    threshold: float
    threshold_reason: str
    tolerance: float  # of the ONNX graph, against scikit-learn
    target: str | None
    notes: list[str]
    labels: np.ndarray | None = None  # 0/1 of the labelled rows
    labelled: np.ndarray | None = None  # which rows hold a label
    evaluation: EvaluationReport | None = None
    gates: list[GateResult] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)

    def evaluate(self, gates: list[Gate], options: ImportOptions) -> list[GateResult]:
        """Metrics, operating points and gates on the labelled rows; [] without labels."""
        if self.labels is None or self.labelled is None:
            return []
        scores = self.probabilities[self.labelled]
        self.evaluation = evaluate_model(
            self.labels, scores, self.threshold, resamples=_RESAMPLES, seed=_SEED
        )
        self.points = [point.model_dump() for point in operating_points(self.labels, scores)]
        self.gates = check_gates(gates, self.evaluation.metrics)
        return self.gates


def run_on_sample(
    foreign: ForeignModel,
    estimator: Any,
    source: ModelSource,
    frame: pd.DataFrame,
    options: ImportOptions,
) -> SampleRun:
    """The model checked against its sample and wrapped as tabops stores it.

    Raises:
        ModelImportError: not a binary classifier with ``predict_proba``; columns at odds
            with the sample; the model's own error on the sample; a different score once
            the columns take the types tabops serves.
        DataError: the target is not a column of the sample, or holds other classes.
    """
    classes = tuple(python_value(value) for value in foreign.classes)
    if len(classes) != 2 or not callable(getattr(estimator, "predict_proba", None)):
        shown = ", ".join(repr(value) for value in classes)
        raise ModelImportError(
            f"the model predicts {len(classes)} classes ({shown}); tabops serves binary "
            "classifiers with predict_proba",
            [Problem("model", f"{len(classes)} classes, not 2")],
        )
    target = options.target
    if target is not None and target not in frame.columns:
        raise DataError(
            f"the target column {target!r} is not in the sample",
            [Problem("target", "not a column of the sample")],
        )
    positive_index = _positive_index(classes, options.positive_class)
    layout = model_columns(source, foreign.feature_names, foreign.n_features, frame, target)
    spec = import_spec(frame, layout.columns, target, source.inputs)
    raw = frame[layout.columns]
    try:
        own = np.asarray(
            estimator.predict_proba(raw.to_numpy() if layout.as_array else raw), dtype=np.float64
        )
    except Exception as exc:  # the model's own refusal, whatever it raises
        message = _first_line(exc)
        raise ModelImportError(
            f"the model refuses the sample: {message}", [Problem("sample", message)]
        ) from exc
    text = [c.name for c in spec.features if c.kind is Kind.CATEGORICAL]
    model = wrap_imported(
        estimator,
        layout.columns,
        text,
        as_array=layout.as_array,
        positive_first=positive_index == 0,
        sample=frame,
    )
    features = coerce_frame(frame, spec)
    try:
        probabilities = np.asarray(model.predict_proba(features)[:, 1], dtype=np.float64)
    except Exception as exc:  # the model's own refusal of the served types
        message = _first_line(exc)
        raise ModelImportError(
            f"fed as tabops serves it ({_SERVED_TYPES}), the model fails: {message}",
            [Problem("sample", message)],
        ) from exc
    _check_served(own[:, positive_index], probabilities)
    negative = classes[1 - positive_index]
    positive = classes[positive_index]
    names = tuple(options.class_names.get(str(value), str(value)) for value in (negative, positive))
    if options.threshold is None:
        threshold = _DEFAULT_THRESHOLD
        reason = "0.5: the cut-off the model's own predict() uses, so importing changes no decision"
    else:
        threshold = options.threshold
        reason = f"{threshold:g}: set when the model was imported"
    run = SampleRun(
        frame=frame,
        spec=spec,
        model=model,
        features=features,
        probabilities=probabilities,
        classes=(negative, positive),
        class_names=(names[0], names[1]),
        threshold=float(threshold),
        threshold_reason=reason,
        tolerance=options.compile_tolerance,
        target=target,
        notes=list(layout.notes),
    )
    if target is not None:
        _read_labels(run, frame[target], classes, positive)
    return run


def _positive_index(classes: tuple[Any, ...], asked: Any) -> int:
    if asked is None:
        return 1
    for index, value in enumerate(classes):
        if str(value) == str(asked):
            return index
    raise ModelImportError(
        f"positive class {asked!r} is not one of the model's classes {list(classes)}",
        [Problem("positive_class", f"not one of {list(classes)}")],
    )


def _check_served(own: np.ndarray, served: np.ndarray) -> None:
    """Refuse a model that scores the sample differently once fed as tabops serves it."""
    if not np.isfinite(own).all():
        raise ModelImportError(
            "the model gives non-finite probabilities on the sample",
            [Problem("sample", "NaN or infinite probabilities")],
        )
    difference = np.abs(own - served)
    worst = int(np.argmax(difference))
    if not difference[worst] <= GOLDEN_TOLERANCE:
        raise ModelImportError(
            f"fed as tabops serves it ({_SERVED_TYPES}), the model scores sample row "
            f"{worst + 1} {difference[worst]:.3g} away from its score on the sample as read",
            [Problem("sample", f"row {worst + 1} scores differently as served")],
        )


def _read_labels(
    run: SampleRun, values: pd.Series, classes: tuple[Any, ...], positive: Any
) -> None:
    """The labelled rows' labels as 0/1 (1 = the positive class)."""
    present = values.notna().to_numpy()
    text = values[present].astype(str)
    known = {str(value) for value in classes}
    strange = sorted(set(text) - known)
    if strange:
        raise DataError(
            f"target {values.name!r} holds values the model does not predict: "
            f"{', '.join(strange[:10])} (its classes are {list(classes)})",
            [Problem("target", f"values outside the model's classes: {', '.join(strange[:10])}")],
        )
    if not present.all():
        run.notes.append(
            f"{int((~present).sum())} sample rows without a label were left out of the metrics"
        )
    run.labelled = present
    run.labels = (text == str(positive)).to_numpy(dtype=int)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
