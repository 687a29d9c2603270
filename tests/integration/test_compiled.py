"""ONNX graphs agree with scikit-learn on every example dataset, or are refused and not served."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from conftest import REPO
from example_files import example_data_path
from tabops.config import Settings
from tabops.model.calibration import CalibratedPipeline, ProbabilityCalibrator
from tabops.model.compiled import COMPILE_TOLERANCE, CompiledScorer, compile_model, split_model
from tabops.model.files import ONNX_FILE
from tabops.model.predictor import Predictor
from tabops.project import load_project, read_project_table
from tabops.registry.versions import MANIFEST
from tabops.schema import FeatureSpec, coerce_frame, infer_schema
from tabops.training.candidates import build_candidate
from tabops.training.train import encode_target

EXAMPLES = sorted(path.parent.name for path in (REPO / "examples").glob("*/tabops.yaml"))
FIT_ROWS_PER_CLASS = 1_500  # at most 3,000 rows to fit and compile on
SCORED_ROWS = 20_000  # at most this many rows compared after compiling
TREES = 30
MEMBERS = {"voting": [("logistic_regression", {}), ("hist_gradient_boosting", {})]}
CANDIDATES = ["logistic_regression", "random_forest", "hist_gradient_boosting", "voting"]
MODEL = "heart-failure"


class ExampleData:
    """An example's features and 0/1 target: rows to fit on, rows to compare on."""

    def __init__(self, spec: FeatureSpec, x: pd.DataFrame, y: np.ndarray) -> None:
        rng = np.random.default_rng(0)
        fit = [
            rng.choice(rows, min(len(rows), FIT_ROWS_PER_CLASS), replace=False)
            for rows in (np.flatnonzero(y == 0), np.flatnonzero(y == 1))
        ]
        fit_rows = np.sort(np.concatenate(fit))
        scored_rows = np.sort(rng.choice(len(x), min(len(x), SCORED_ROWS), replace=False))
        self.spec = spec
        self.x_fit, self.y_fit = x.iloc[fit_rows], y[fit_rows]
        self.x_scored = x.iloc[scored_rows]


@cache
def example_data(name: str) -> ExampleData | None:
    project, folder = load_project(REPO / "examples" / name)
    path = example_data_path(project, folder)
    if not path.is_file():
        return None
    frame = read_project_table(project, path)
    y, _negative, _positive = encode_target(frame, project)
    return ExampleData(project.schema_, coerce_frame(frame, project.schema_), y)


def data_of(name: str) -> ExampleData:
    data = example_data(name)
    if data is None:
        pytest.skip(f"{name}: its data file is not in this checkout's shared datasets")
    return data


def fitted(name: str, data: ExampleData) -> Any:
    model = build_candidate(
        name,
        {},
        data.spec,
        imbalance="none",
        seed=0,
        minority_rows=int(data.y_fit.sum()),
        members=MEMBERS.get(name),
    )
    trees = [key for key in model.get_params() if key.endswith("n_estimators")]
    return model.set_params(**dict.fromkeys(trees, TREES)).fit(data.x_fit, data.y_fit)


def assert_graph_agrees_on_every_scored_row(model: Any, data: ExampleData) -> dict[str, Any]:
    expected_fit = model.predict_proba(data.x_fit)[:, 1]

    graph, report = compile_model(model, data.x_fit, expected_fit)

    assert report.status == "compiled", report.reason
    assert graph is not None
    assert report.runtime == "onnxruntime"
    assert report.rows_checked == len(data.x_fit)
    assert report.max_abs_difference is not None
    assert report.max_abs_difference <= COMPILE_TOLERANCE
    parts = split_model(model)
    assert parts is not None
    # As a predictor runs it: encoder, graph, then the calibrator unless the graph holds it.
    calibrator = None if report.calibration_in_graph else parts.calibrator
    scorer = CompiledScorer(graph, str(report.precision), calibrator)
    observed = scorer.score(parts.encoder.transform(data.x_scored))
    expected = model.predict_proba(data.x_scored)[:, 1]
    np.testing.assert_allclose(observed, expected, rtol=0, atol=COMPILE_TOLERANCE)
    return report.as_manifest()


@pytest.mark.parametrize("candidate", CANDIDATES)
@pytest.mark.parametrize("example", EXAMPLES)
def test_onnx_and_scikit_learn_agree_on_every_example_dataset(example, candidate):
    data = data_of(example)

    assert_graph_agrees_on_every_scored_row(fitted(candidate, data), data)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("candidate", ["logistic_regression", "hist_gradient_boosting"])
@pytest.mark.parametrize("example", EXAMPLES)
def test_calibrated_onnx_and_scikit_learn_agree_on_every_example_dataset(
    example, candidate, method
):
    data = data_of(example)
    pipeline = fitted(candidate, data)
    raw = pipeline.predict_proba(data.x_fit)[:, 1]
    calibrator = ProbabilityCalibrator(method).fit(raw, data.y_fit)

    report = assert_graph_agrees_on_every_scored_row(CalibratedPipeline(pipeline, calibrator), data)

    # Sigmoid calibration runs inside the graph; isotonic stays in numpy after it.
    assert report["calibration_in_graph"] is (method == "sigmoid")


@pytest.mark.parametrize("with_gaps", [False, True], ids=["complete", "with-a-nullable-feature"])
def test_hist_gradient_boosting_on_wide_integers_compiles_with_exact_thresholds(with_gaps):
    # Integers near 1e8 are 8 apart in float32: a graph with float32 thresholds sends
    # rows the other way at nearly every split; only the double-threshold graph agrees.
    rng = np.random.default_rng(0)
    big = rng.integers(100_000_000, 100_001_000, size=2_000)
    frame = pd.DataFrame({"big": big, "noise": rng.normal(size=len(big))})
    if with_gaps:
        frame.loc[rng.random(len(big)) < 0.1, "noise"] = np.nan
    frame["y"] = ((big % 16) < 8).astype(int)
    spec = infer_schema(frame, "y").spec
    data = ExampleData(spec, coerce_frame(frame, spec), frame["y"].to_numpy())

    report = assert_graph_agrees_on_every_scored_row(fitted("hist_gradient_boosting", data), data)

    assert report["precision"] == "double"


# --- graphs refused at compile time -------------------------------------------------------


def test_compile_refuses_a_graph_that_disagrees_with_the_expected_probabilities():
    data = data_of(MODEL)
    model = fitted("logistic_regression", data)
    shifted = model.predict_proba(data.x_fit)[:, 1] + 0.01

    graph, report = compile_model(model, data.x_fit, shifted)

    assert graph is None
    assert report.status == "not_compiled"
    assert report.runtime == "scikit-learn"
    assert report.reason is not None
    assert "differs from scikit-learn by up to 0.01 " in report.reason
    assert report.rows_checked == len(data.x_fit)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(LogisticRegression(max_iter=10_000), id="bare-classifier"),
        pytest.param(
            Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=10_000))]),
            id="pipeline-without-encoder",
        ),
    ],
)
def test_compile_refuses_a_model_that_does_not_start_with_an_encoder(model):
    data = data_of(MODEL)
    model.fit(data.x_fit.to_numpy(), data.y_fit)
    expected = model.predict_proba(data.x_fit.to_numpy())[:, 1]

    graph, report = compile_model(model, data.x_fit, expected)

    assert graph is None
    assert report.status == "not_compiled"
    assert report.runtime == "scikit-learn"
    assert report.reason == "the model does not start with an encoder"


# --- registered versions ------------------------------------------------------------------


def version_folder(home: Path) -> Path:
    return Settings(home=home).registry_path / MODEL / "versions" / "1"


def replace_graph(home: Path, graph: bytes) -> None:
    """Put another graph in version 1, with its sha256 in the manifest, as a registry would."""
    folder = version_folder(home)
    (folder / ONNX_FILE).write_bytes(graph)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][ONNX_FILE] = hashlib.sha256(graph).hexdigest()
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def other_graph(spec: FeatureSpec, candidate: str, precision: str = "double") -> bytes:
    """A valid graph of another model on the heart data: inverted labels, other settings."""
    data = data_of(MODEL)
    x = data.x_fit[spec.feature_names]
    model = build_candidate(
        candidate, {}, spec, imbalance="none", seed=3, minority_rows=int(data.y_fit.sum())
    )
    trees = [key for key in model.get_params() if key.endswith("n_estimators")]
    model.set_params(**dict.fromkeys(trees, 5)).fit(x, 1 - data.y_fit)
    graph, report = compile_model(model, x, model.predict_proba(x)[:, 1])
    assert graph is not None, report.reason
    assert report.precision == precision
    return graph


def heart_spec(registry) -> FeatureSpec:
    return registry.get_version(MODEL, 1).manifest.feature_spec


def test_a_trained_version_stores_its_verified_graph_and_is_served_by_onnxruntime(registry):
    manifest = registry.get_version(MODEL, 1).manifest.document()
    graph = registry.read_file(MODEL, 1, ONNX_FILE)

    predictor = Predictor.load(registry, MODEL, 1)

    assert manifest["files"][ONNX_FILE] == hashlib.sha256(graph).hexdigest()
    compiled = manifest["compiled"]
    assert compiled["status"] == "compiled"
    assert compiled["runtime"] == "onnxruntime"
    assert compiled["rows_checked"] > 0
    assert compiled["max_abs_difference"] <= compiled["tolerance"] == COMPILE_TOLERANCE
    assert compiled["reason"] is None
    assert predictor.runtime == "onnxruntime"
    assert predictor.runtime_detail is None


def assert_scores_like(predictor: Predictor, original: Predictor) -> None:
    records = [original.example(index) for index in range(10)]
    np.testing.assert_allclose(
        [p.probability for p in predictor.predict_records(records)],
        [p.probability for p in original.predict_records(records)],
        rtol=0,
        atol=COMPILE_TOLERANCE,
    )


def test_a_version_whose_graph_disagrees_on_its_golden_rows_is_served_by_scikit_learn(
    home, registry
):
    original = Predictor.load(registry, MODEL, 1)
    replace_graph(home, other_graph(heart_spec(registry), "logistic_regression"))

    predictor = Predictor.load(registry, MODEL, 1)

    assert predictor.runtime == "scikit-learn"
    assert predictor.runtime_detail is not None
    assert "differs from scikit-learn" in predictor.runtime_detail
    assert "golden rows" in predictor.runtime_detail
    assert_scores_like(predictor, original)


@pytest.mark.parametrize(
    ("features", "candidate", "precision"),
    [
        pytest.param("same", "random_forest", "float", id="single-precision-input"),
        pytest.param("fewer", "logistic_regression", "double", id="narrower-input"),
    ],
)
def test_a_version_whose_graph_cannot_score_its_rows_is_served_by_scikit_learn(
    home, registry, features, candidate, precision
):
    original = Predictor.load(registry, MODEL, 1)
    spec = heart_spec(registry)
    if features == "fewer":
        spec = FeatureSpec(columns=[c for c in spec.columns if c.name != "time"])
    replace_graph(home, other_graph(spec, candidate, precision))

    predictor = Predictor.load(registry, MODEL, 1)

    assert predictor.runtime == "scikit-learn"
    assert predictor.runtime_detail is not None
    assert_scores_like(predictor, original)
