"""The compiled form of an imported model: an ONNX graph taking one input per feature column.

An imported model brings its own preprocessing, so it has no ``FeatureEncoder`` for the graph
to start after. Instead skl2onnx converts the whole model, each feature column an input of
its own (numbers ``[N, 1]`` doubles, or floats when onnxruntime has no double kernel for
some step; categories ``[N, 1]`` strings); a model fitted on one matrix gets its columns
joined by a ``Concat`` node. The graph's last node picks the positive class's probability.
It is kept only when it reproduces scikit-learn on the checked rows within the tolerance the
import asked for.

A row holding a category the sample never showed (or a gap in a text column) is scored by
scikit-learn instead: the model's own encoder decides what such a value means, and a
converted one-hot encoder need not decide the same.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from tabops.model.compiled import CompileReport, summarize_error
from tabops.model.graphs import OPSETS, register_boosting_converter
from tabops.model.imported import imported_parts
from tabops.schema import FeatureSpec, Kind

CONVERTER = "skl2onnx-columns"
_JOINED = "tabops_features"
_POSITIVE = "tabops_positive_probability"
_POSITIVE_INDEX = "tabops_positive_index"
_INPUT_TYPES: dict[str, Any] = {
    "tensor(double)": np.float64,
    "tensor(float)": np.float32,
    "tensor(string)": object,
}


class ColumnScorer:
    """An onnxruntime session over a graph with one input per feature column."""

    def __init__(self, graph: bytes, spec: FeatureSpec, threads: int = 1) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            graph, options, providers=["CPUExecutionProvider"]
        )
        self.output = self.session.get_outputs()[-1].name
        self.inputs: list[tuple[str, Any]] = []
        for found in self.session.get_inputs():
            if found.type not in _INPUT_TYPES:
                raise ValueError(f"graph input {found.name!r} has type {found.type}")
            self.inputs.append((found.name, _INPUT_TYPES[found.type]))
        features = {column.name: column for column in spec.features}
        unknown = [name for name, _dtype in self.inputs if name not in features]
        if unknown:
            raise ValueError(f"graph inputs that are not features: {', '.join(unknown)}")
        self.known = {
            name: frozenset(features[name].categories or ())
            for name, dtype in self.inputs
            if dtype is object
        }

    def arrays(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> dict[str, np.ndarray]:
        """Each input's values as the array the graph takes (None in a number is NaN)."""
        return {name: np.asarray(columns[name], dtype=dtype) for name, dtype in self.inputs}

    def scorable(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """Which rows the graph may score: every category one the sample showed."""
        rows = len(arrays[self.inputs[0][0]])
        mask = np.ones(rows, dtype=bool)
        for name, known in self.known.items():
            mask &= np.fromiter((value in known for value in arrays[name]), bool, count=rows)
        return mask

    def run(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """Positive-class probabilities of rows the graph may score, in one session call."""
        feeds = {name: values.reshape(-1, 1) for name, values in arrays.items()}
        (probability,) = self.session.run([self.output], feeds)
        return np.asarray(probability, dtype=np.float64).reshape(-1)

    def score(
        self,
        columns: Mapping[str, Sequence[Any] | np.ndarray],
        fallback: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """Positive-class probabilities; ``fallback(mask)`` scores the rows the graph may not."""
        arrays = self.arrays(columns)
        mask = self.scorable(arrays)
        if mask.all():
            return self.run(arrays)
        probabilities = np.empty(len(mask), dtype=np.float64)
        if mask.any():
            probabilities[mask] = self.run({name: values[mask] for name, values in arrays.items()})
        probabilities[~mask] = fallback(~mask)
        return probabilities


def compile_columns(
    model: Any, spec: FeatureSpec, checks: pd.DataFrame, expected: np.ndarray, tolerance: float
) -> tuple[bytes | None, CompileReport]:
    """Convert an imported model to a column-input graph and verify it on ``checks``.

    Args:
        model: the stored model (``tabops.model.imported``'s pipeline).
        spec: the version's feature spec.
        checks: rows as ``coerce_frame`` gives them, to verify on.
        expected: scikit-learn's positive-class probabilities of those rows.
        tolerance: the largest difference from scikit-learn a kept graph may show.

    Returns:
        The graph (None when no conversion reproduces scikit-learn) and the report.
    """
    started = time.perf_counter()
    parts = imported_parts(model)
    if parts is None:
        return None, CompileReport(
            "not_compiled", "scikit-learn", tolerance=tolerance, reason="not an imported model"
        )
    step, estimator, swapped = parts
    failures: list[str] = []
    checked = 0
    for precision in ("double", "float"):
        try:
            graph = column_graph(
                estimator, spec, precision, joined=step.as_array, positive=0 if swapped else 1
            )
            scorer = ColumnScorer(graph, spec)
            arrays = scorer.arrays({name: checks[name].to_numpy() for name in spec.feature_names})
            mask = scorer.scorable(arrays)
            observed = scorer.run({name: values[mask] for name, values in arrays.items()})
        except Exception as exc:  # any converter or runtime failure means "no graph"
            failures.append(f"skl2onnx ({precision}): {summarize_error(exc)}")
            continue
        checked = int(mask.sum())
        difference = float(np.max(np.abs(observed - expected[mask]))) if checked else 0.0
        if checked and difference <= tolerance:
            return graph, CompileReport(
                "compiled",
                "onnxruntime",
                precision=precision,
                converter=CONVERTER,
                rows_checked=checked,
                max_abs_difference=difference,
                tolerance=tolerance,
                seconds=round(time.perf_counter() - started, 3),
            )
        failures.append(
            f"skl2onnx ({precision}): differs from scikit-learn by up to {difference:.3g} "
            f"(tolerance {tolerance:g})"
            if checked
            else f"skl2onnx ({precision}): no checked row holds only categories of the sample"
        )
    return None, CompileReport(
        "not_compiled",
        "scikit-learn",
        rows_checked=checked,
        tolerance=tolerance,
        seconds=round(time.perf_counter() - started, 3),
        reason="; ".join(failures),
    )


def column_graph(
    estimator: Any, spec: FeatureSpec, precision: str, *, joined: bool, positive: int
) -> bytes:
    """skl2onnx's graph of a fitted model, one input per feature, the positive probability out.

    Args:
        estimator: the user's classifier or pipeline.
        spec: its feature spec (inputs are named and typed after its features).
        precision: ``double`` or ``float``, for the number inputs.
        joined: the model was fitted on one matrix: its columns are joined in the graph.
        positive: which column of the model's probabilities is the positive class.

    Raises:
        ValueError: a model fitted on one matrix has a text column; any converter error.
    """
    from onnx import TensorProto, helper, numpy_helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    number = DoubleTensorType if precision == "double" else FloatTensorType
    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    register_boosting_converter(type(final).__name__)
    features = spec.features
    joined = joined or not _selects_by_name(estimator)
    if joined:
        if any(column.kind is Kind.CATEGORICAL for column in features):
            raise ValueError("a model fitted on one matrix of text columns is not converted")
        initial: list[tuple[str, Any]] = [(_JOINED, number([None, len(features)]))]
    else:
        initial = [
            (c.name, (StringTensorType if c.kind is Kind.CATEGORICAL else number)([None, 1]))
            for c in features
        ]
    with warnings.catch_warnings():
        # skl2onnx writes booleans into integer attributes of tree ensembles (see graphs.py).
        warnings.filterwarnings("ignore", message=".*Expected an int, got a boolean")
        converted = convert_sklearn(
            estimator,
            initial_types=initial,
            options={id(estimator): {"zipmap": False}},
            target_opset=OPSETS,
        )
    graph = converted.graph
    probabilities = graph.output[-1]
    element = probabilities.type.tensor_type.elem_type
    graph.initializer.append(numpy_helper.from_array(np.array(positive, np.int64), _POSITIVE_INDEX))
    graph.node.append(
        helper.make_node("Gather", [probabilities.name, _POSITIVE_INDEX], [_POSITIVE], axis=1)
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(_POSITIVE, element, [None]))
    if joined:
        elem = TensorProto.DOUBLE if precision == "double" else TensorProto.FLOAT
        del graph.input[:]
        graph.input.extend(helper.make_tensor_value_info(c.name, elem, [None, 1]) for c in features)
        graph.node.insert(0, helper.make_node("Concat", spec.feature_names, [_JOINED], axis=1))
    data: bytes = converted.SerializeToString()
    return data


def _selects_by_name(estimator: Any) -> bool:
    """Whether the model starts by picking columns by name (skl2onnx then takes them apart)."""
    first = estimator.steps[0][1] if isinstance(estimator, Pipeline) else estimator
    return isinstance(first, ColumnTransformer)
