"""Probability calibration: the calibrator, the calibrated pipeline, and storing it safely."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.metrics import brier_score_loss
from sklearn.pipeline import Pipeline

from tabops.model.calibration import CalibratedPipeline, ProbabilityCalibrator
from tabops.model.files import dump_model, load_model
from tabops.schema import infer_schema
from tabops.training.candidates import build_candidate, strip_resampling

METHODS = ("sigmoid", "isotonic")


@pytest.fixture(scope="module")
def overconfident() -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from a true probability, and raw scores pushed towards 0 and 1."""
    rng = np.random.default_rng(11)
    truth = rng.uniform(0.05, 0.95, size=2_000)
    y = (rng.random(len(truth)) < truth).astype(int)
    logits = np.log(truth / (1 - truth))
    raw = 1 / (1 + np.exp(-3 * logits))
    return raw, y


@pytest.mark.parametrize("method", METHODS)
def test_calibrator_maps_probabilities_to_same_shape_within_unit_interval(overconfident, method):
    raw, y = overconfident

    calibrated = ProbabilityCalibrator(method).fit(raw, y).transform(raw)

    assert calibrated.shape == raw.shape
    assert np.all((calibrated >= 0) & (calibrated <= 1))


@pytest.mark.parametrize("method", METHODS)
def test_calibrator_is_monotone_in_the_raw_probability(overconfident, method):
    raw, y = overconfident
    calibrator = ProbabilityCalibrator(method).fit(raw, y)
    grid = np.linspace(0, 1, 501)

    mapped = calibrator.transform(grid)

    assert np.all(np.diff(mapped) >= -1e-12)
    assert mapped[-1] > mapped[0]


@pytest.mark.parametrize("method", METHODS)
def test_calibrator_lowers_the_brier_score_of_overconfident_probabilities(overconfident, method):
    raw, y = overconfident
    half = len(raw) // 2
    calibrator = ProbabilityCalibrator(method).fit(raw[:half], y[:half])

    after = brier_score_loss(y[half:], calibrator.transform(raw[half:]))

    assert after < brier_score_loss(y[half:], raw[half:])


def test_isotonic_calibrator_clips_probabilities_outside_the_fitted_range():
    raw = np.array([0.2, 0.3, 0.6, 0.7])
    calibrator = ProbabilityCalibrator("isotonic").fit(raw, np.array([0, 0, 1, 1]))

    mapped = calibrator.transform(np.array([0.0, 1.0]))

    np.testing.assert_allclose(mapped, [0.0, 1.0])


def test_sigmoid_calibrator_handles_probabilities_of_exactly_zero_and_one():
    raw = np.array([0.0, 0.0, 0.3, 0.7, 1.0, 1.0])
    calibrator = ProbabilityCalibrator("sigmoid").fit(raw, np.array([0, 0, 1, 0, 1, 1]))

    mapped = calibrator.transform(raw)

    assert np.isfinite(mapped).all()
    assert mapped[0] < mapped[-1]


def test_calibrator_with_unknown_method_raises_value_error():
    with pytest.raises(ValueError, match="unknown calibration method 'beta'"):
        ProbabilityCalibrator("beta").fit(np.array([0.1, 0.9]), np.array([0, 1]))  # type: ignore[arg-type]


def test_calibrator_transform_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        ProbabilityCalibrator("sigmoid").transform(np.array([0.5]))


# CalibratedPipeline ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(5)
    y = (rng.random(300) < 0.3).astype(int)
    frame = pd.DataFrame(
        {
            "signal": rng.normal(size=300) + 1.5 * y,
            "noise": rng.normal(size=300),
            "colour": rng.choice(["red", "green", "blue"], size=300),
            "y": y,
        }
    )
    return frame, y


def fitted_pipeline(data: tuple[pd.DataFrame, np.ndarray], name: str, imbalance: str) -> Pipeline:
    frame, y = data
    spec = infer_schema(frame, "y").spec
    pipeline = build_candidate(
        name, {}, spec, imbalance=imbalance, seed=0, minority_rows=int(y.sum())
    )
    return strip_resampling(pipeline.fit(frame.drop(columns="y"), y))


@pytest.fixture(scope="module", params=METHODS)
def calibrated(request, data) -> CalibratedPipeline:
    frame, y = data
    pipeline = fitted_pipeline(data, "logistic_regression", "undersample")
    raw = pipeline.predict_proba(frame.drop(columns="y"))[:, 1]
    return CalibratedPipeline(pipeline, ProbabilityCalibrator(request.param).fit(raw, y))


def test_calibrated_pipeline_probabilities_sum_to_one_per_row(calibrated, data):
    frame, _y = data

    probability = calibrated.predict_proba(frame.drop(columns="y"))

    assert probability.shape == (len(frame), 2)
    np.testing.assert_allclose(probability.sum(axis=1), 1.0)
    assert np.all((probability >= 0) & (probability <= 1))


def test_calibrated_pipeline_takes_classes_from_the_pipeline(calibrated):
    assert calibrated.classes_ is calibrated.pipeline.classes_
    assert list(calibrated.classes_) == [0, 1]


def test_calibrated_pipeline_positive_column_is_the_calibrated_raw_probability(calibrated, data):
    x = data[0].drop(columns="y")

    positive = calibrated.predict_proba(x)[:, 1]

    raw = calibrated.pipeline.predict_proba(x)[:, 1]
    np.testing.assert_allclose(positive, calibrated.calibrator.transform(raw))


def test_calibrated_pipeline_predicts_the_class_at_half_probability(calibrated, data):
    x = data[0].drop(columns="y")

    labels = calibrated.predict(x)

    expected = (calibrated.predict_proba(x)[:, 1] >= 0.5).astype(int)
    np.testing.assert_array_equal(labels, calibrated.classes_[expected])


def test_calibrated_pipeline_fit_learns_nothing_and_needs_a_fitted_calibrator(calibrated, data):
    frame, y = data
    x = frame.drop(columns="y")
    before = calibrated.predict_proba(x)

    assert calibrated.fit(x, y) is calibrated
    np.testing.assert_array_equal(calibrated.predict_proba(x), before)
    with pytest.raises(NotFittedError):
        CalibratedPipeline(calibrated.pipeline, ProbabilityCalibrator()).fit(x, y)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["logistic_regression", "hist_gradient_boosting"])
def test_calibrated_pipeline_round_trips_through_dump_and_load_model(data, name, method):
    frame, y = data
    x = frame.drop(columns="y")
    pipeline = fitted_pipeline(data, name, "smote")
    raw = pipeline.predict_proba(x)[:, 1]
    model = CalibratedPipeline(pipeline, ProbabilityCalibrator(method).fit(raw, y))

    loaded = load_model(dump_model(model))

    assert isinstance(loaded, CalibratedPipeline)
    assert loaded.calibrator.method == method
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
