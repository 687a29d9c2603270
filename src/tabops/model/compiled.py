"""The compiled form of a model: an ONNX graph run by onnxruntime, trusted only once verified.

A stored model is ``FeatureEncoder`` -> preprocessing -> classifier, optionally wrapped with a
probability calibrator. The encoder (plain numpy, exact) and the calibrator stay in Python;
everything between them is converted to ONNX with skl2onnx, in double precision when the
runtime can execute the graph that way, else in single precision. A graph is kept only when
it reproduces scikit-learn's probabilities on the rows it is checked on to within
``COMPILE_TOLERANCE``; otherwise the version serves through scikit-learn and its manifest
says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tabops.model.calibration import (
    CALIBRATION_EPSILON,
    CalibratedPipeline,
    ProbabilityCalibrator,
)
from tabops.model.encoder import FeatureEncoder
from tabops.model.graphs import (
    SINGLE_PRECISION_TREES,
    append_sigmoid_calibration,
    boosting_graph,
    hist_gradient_boosting_graph,
    skl2onnx_graph,
    soft_voting_graph,
)

COMPILE_TOLERANCE = 1e-5
_PRECISIONS = ("double", "float")


@dataclass(frozen=True)
class ModelParts:
    """A stored model taken apart: encoder, the convertible middle, optional calibrator."""

    encoder: FeatureEncoder
    body: Pipeline
    calibrator: ProbabilityCalibrator | None


@dataclass(frozen=True)
class CompileReport:
    """What compilation produced, recorded in the version's manifest."""

    status: str  # "compiled" or "not_compiled"
    runtime: str  # "onnxruntime" or "scikit-learn"
    precision: str | None = None
    converter: str | None = None
    rows_checked: int = 0
    max_abs_difference: float | None = None
    tolerance: float = COMPILE_TOLERANCE
    seconds: float = 0.0
    reason: str | None = None
    calibration_in_graph: bool = False

    def as_manifest(self) -> dict[str, Any]:
        """The report as plain JSON values."""
        return asdict(self)


def split_model(model: Any) -> ModelParts | None:
    """The parts of a model built by tabops, or None for a model of another shape."""
    calibrator = None
    pipeline = model
    if isinstance(model, CalibratedPipeline):
        pipeline, calibrator = model.pipeline, model.calibrator
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        return None
    encoder = pipeline.steps[0][1]
    if not isinstance(encoder, FeatureEncoder):
        return None
    return ModelParts(encoder, Pipeline(pipeline.steps[1:]), calibrator)


class CompiledScorer:
    """An onnxruntime session for a model's middle part, plus its calibrator."""

    def __init__(
        self,
        graph: bytes,
        precision: str,
        calibrator: ProbabilityCalibrator | None,
        threads: int = 1,
    ) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            graph, options, providers=["CPUExecutionProvider"]
        )
        self.precision = precision
        self.dtype = np.float64 if precision == "double" else np.float32
        self.input_name = self.session.get_inputs()[0].name
        self.outputs = [self.session.get_outputs()[-1].name]
        self.calibrate = calibrator.mapping() if calibrator is not None else None

    def score(self, encoded: np.ndarray) -> np.ndarray:
        """Positive-class probabilities of encoder output rows, in one session call."""
        probabilities = self.session.run(
            self.outputs, {self.input_name: encoded.astype(self.dtype, copy=False)}
        )[0]
        positive = np.asarray(probabilities[:, 1], dtype=np.float64)
        if self.calibrate is not None:
            positive = self.calibrate(positive)
        return positive


def compile_model(
    model: Any, checks: pd.DataFrame, expected: np.ndarray
) -> tuple[bytes | None, CompileReport]:
    """Convert a fitted model to ONNX and verify it on ``checks`` against ``expected``.

    Args:
        model: the stored model (encoder first).
        checks: rows of feature columns to verify on (golden rows, reference sample).
        expected: scikit-learn's positive-class probabilities of those rows.

    Returns:
        The graph (None when no conversion reproduces scikit-learn) and the report.
    """
    started = time.perf_counter()
    parts = split_model(model)
    if parts is None:
        return None, CompileReport(
            "not_compiled", "scikit-learn", reason="the model does not start with an encoder"
        )
    encoded = parts.encoder.transform(checks)
    failures: list[str] = []
    calibrator = parts.calibrator
    in_graph = calibrator is not None and calibrator.method == "sigmoid"
    for converter, precision, convert in _conversions(parts):
        try:
            graph = convert(parts.body, encoded.shape[1])
            if in_graph and calibrator is not None:
                graph = append_sigmoid_calibration(
                    graph,
                    float(calibrator.mapping_.coef_[0, 0]),
                    float(calibrator.mapping_.intercept_[0]),
                    CALIBRATION_EPSILON,
                    precision,
                )
            scorer = CompiledScorer(graph, precision, None if in_graph else calibrator)
            observed = scorer.score(encoded)
        except Exception as exc:  # any converter or runtime failure means "no graph"
            failures.append(f"{converter} ({precision}): {summarize_error(exc)}")
            continue
        difference = float(np.max(np.abs(observed - expected))) if len(expected) else 0.0
        if difference <= COMPILE_TOLERANCE:
            return graph, CompileReport(
                "compiled",
                "onnxruntime",
                precision=precision,
                converter=converter,
                rows_checked=len(expected),
                max_abs_difference=difference,
                seconds=round(time.perf_counter() - started, 3),
                calibration_in_graph=in_graph,
            )
        failures.append(
            f"{converter} ({precision}): differs from scikit-learn by up to {difference:.3g} "
            f"(tolerance {COMPILE_TOLERANCE:g})"
        )
    return None, CompileReport(
        "not_compiled",
        "scikit-learn",
        rows_checked=len(expected),
        seconds=round(time.perf_counter() - started, 3),
        reason="; ".join(failures) or "no converter for this model",
    )


Converter = Callable[[Pipeline, int], bytes]


def _conversions(parts: ModelParts) -> list[tuple[str, str, Converter]]:
    classifier = parts.body.steps[-1][1]
    conversions: list[tuple[str, str, Converter]] = []
    if type(classifier).__name__ == "HistGradientBoostingClassifier":
        # skl2onnx rounds split thresholds to float32; this graph keeps them in float64.
        conversions.append(("tabops-trees", "double", hist_gradient_boosting_graph))
    if type(classifier).__name__ in ("LGBMClassifier", "XGBClassifier"):
        # onnxmltools' trees in float32, their sigmoid (and any calibration) in float64.
        conversions.append(("tabops-boosting", "double", boosting_graph))
    if type(classifier).__name__ == "VotingClassifier" and classifier.voting == "soft":
        # Each member through its own exact conversion, averaged in double precision.
        conversions.append(("tabops-voting", "double", soft_voting_graph))
    # onnxruntime runs tree-ensemble classifiers in single precision only: skip the attempt.
    trees = any(
        type(step).__name__ in SINGLE_PRECISION_TREES
        for step in (classifier, *_members(classifier))
    )
    for precision in ("float",) if trees else _PRECISIONS:
        convert = partial(skl2onnx_graph, precision=precision)
        conversions.append(("skl2onnx", precision, convert))
    return conversions


def _members(classifier: Any) -> list[Any]:
    return [estimator for _name, estimator in getattr(classifier, "estimators", [])]


def summarize_error(exc: Exception) -> str:
    """An error's type and the first line of its message, for a report's ``reason``."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
