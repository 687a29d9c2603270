"""Held-out metrics, their bootstrap intervals and the gates, on hand-made scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)

from tabops.project import METRIC_NAMES, Gate
from tabops.training.evaluate import (
    _metrics_from_counts,
    bootstrap_intervals,
    check_gates,
    evaluate_model,
)

Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8])


def test_evaluate_model_metrics_of_a_known_tiny_case():
    report = evaluate_model(Y, P, threshold=0.5)

    assert report.rows == 4
    assert report.positives == 2
    assert report.threshold == 0.5
    assert report.confusion == {"tn": 2, "fp": 0, "fn": 1, "tp": 1}
    expected = {
        "roc_auc": 0.75,
        "pr_auc": 0.5 * 1.0 + 0.5 * (2 / 3),
        "f1": 2 / 3,
        "precision": 1.0,
        "recall": 0.5,
        "mcc": 2 / math.sqrt(12),
        "brier": (0.1**2 + 0.4**2 + 0.65**2 + 0.2**2) / 4,
        "log_loss": -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4,
        "accuracy": 0.75,
    }
    assert report.metrics == pytest.approx(expected)
    assert report.intervals == {}


def test_evaluate_model_threshold_is_inclusive():
    report = evaluate_model(Y, P, threshold=0.35)

    assert report.confusion == {"tn": 1, "fp": 1, "fn": 0, "tp": 2}
    assert report.metrics["f1"] == pytest.approx(0.8)


def test_evaluate_model_single_class_set_gives_nan_auc_without_warnings():
    report = evaluate_model(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]), threshold=0.5)

    assert math.isnan(report.metrics["roc_auc"])
    assert math.isnan(report.metrics["pr_auc"])
    assert report.metrics["accuracy"] == 1.0
    assert report.confusion == {"tn": 3, "fp": 0, "fn": 0, "tp": 0}


def _scored(rows: int, positives: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded set whose positives score higher on average, with some overlap."""
    rng = np.random.default_rng(seed)
    y = np.zeros(rows, dtype=int)
    y[rng.choice(rows, positives, replace=False)] = 1
    probability = np.clip(rng.normal(0.3 + 0.3 * y, 0.15), 0, 1)
    return y, probability


def test_evaluate_model_log_loss_is_finite_for_probabilities_of_zero_and_one():
    report = evaluate_model(np.array([0, 1, 1, 0]), np.array([0.0, 1.0, 0.0, 1.0]), 0.5)

    assert math.isfinite(report.metrics["log_loss"])
    # Two confident mistakes, clipped at the float64 epsilon as scikit-learn does.
    assert report.metrics["log_loss"] == pytest.approx(-math.log(np.finfo(float).eps) / 2)


def test_evaluate_model_reports_every_project_metric():
    assert set(evaluate_model(Y, P, 0.5).metrics) == set(METRIC_NAMES)


def test_evaluate_model_with_resamples_fills_an_interval_per_metric():
    y, probability = _scored(300, 60)

    report = evaluate_model(y, probability, 0.5, resamples=200, seed=3)

    assert set(report.intervals) == set(METRIC_NAMES)
    assert report.intervals == bootstrap_intervals(y, probability, 0.5, resamples=200, seed=3)


def test_bootstrap_intervals_contain_the_point_estimate():
    y, probability = _scored(300, 60)
    report = evaluate_model(y, probability, 0.5)

    intervals = bootstrap_intervals(y, probability, 0.5, resamples=500)

    for name, (lower, upper) in intervals.items():
        assert lower <= report.metrics[name] <= upper, name


def test_bootstrap_intervals_narrow_as_rows_grow():
    small = bootstrap_intervals(*_scored(200, 40), 0.5, resamples=300)
    large = bootstrap_intervals(*_scored(5000, 1000), 0.5, resamples=300)

    for name in METRIC_NAMES:
        assert large[name][1] - large[name][0] < small[name][1] - small[name][0], name


def test_bootstrap_intervals_widen_with_the_confidence():
    y, probability = _scored(300, 60)

    narrow = bootstrap_intervals(y, probability, 0.5, resamples=300, confidence=0.5)
    wide = bootstrap_intervals(y, probability, 0.5, resamples=300, confidence=0.99)

    assert wide["roc_auc"][0] < narrow["roc_auc"][0] < narrow["roc_auc"][1] < wide["roc_auc"][1]


def test_bootstrap_intervals_are_reproducible_with_a_seed():
    y, probability = _scored(300, 60)

    first = bootstrap_intervals(y, probability, 0.5, resamples=200, seed=11)
    again = bootstrap_intervals(y, probability, 0.5, resamples=200, seed=11)
    other = bootstrap_intervals(y, probability, 0.5, resamples=200, seed=12)

    assert first == again
    assert first != other


def test_bootstrap_keeps_both_classes_in_every_resample():
    # Unstratified, about one resample in ten would draw no positive and leave the AUCs NaN.
    y = np.array([1, 0, 0, 0, 1, 0, 0])
    probability = np.array([0.9, 0.1, 0.6, 0.3, 0.4, 0.2, 0.7])

    intervals = bootstrap_intervals(y, probability, 0.5, resamples=2000)

    assert not any(math.isnan(bound) for bounds in intervals.values() for bound in bounds)
    assert 0 <= intervals["roc_auc"][0] <= intervals["roc_auc"][1] <= 1


def test_bootstrap_intervals_collapse_when_every_resample_is_the_same():
    # One probability per class: every stratified resample equals the set itself.
    y = np.array([1, 1, 0, 0, 0])
    probability = np.array([0.8, 0.8, 0.3, 0.3, 0.3])
    report = evaluate_model(y, probability, 0.5)

    intervals = bootstrap_intervals(y, probability, 0.5, resamples=50)

    for name, (lower, upper) in intervals.items():
        assert lower == pytest.approx(report.metrics[name]), name
        assert upper == pytest.approx(report.metrics[name]), name


def test_bootstrap_of_a_single_class_set_has_nan_ranking_intervals():
    intervals = bootstrap_intervals(
        np.array([0, 0, 0]), np.array([0.1, 0.2, 0.6]), 0.5, resamples=100
    )

    assert all(math.isnan(bound) for bound in intervals["roc_auc"])
    assert all(math.isnan(bound) for bound in intervals["pr_auc"])
    assert 0 <= intervals["accuracy"][0] <= intervals["accuracy"][1] <= 1


def test_bootstrap_without_resamples_is_empty():
    assert bootstrap_intervals(Y, P, 0.5, resamples=0) == {}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"resamples": -1}, "resamples must be 0 or more"),
        ({"confidence": 1.0}, "confidence must lie strictly between"),
    ],
)
def test_bootstrap_rejects_bad_settings(arguments, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_intervals(Y, P, 0.5, **arguments)


@pytest.mark.parametrize("seed", range(20))
def test_metrics_from_counts_match_scikit_learn_with_sample_weights(seed):
    # The bootstrap computes every metric from per-probability counts; a resample is a weighting.
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 40)
    y[:2] = [0, 1]
    probability = np.round(rng.random(40), 1)  # ties within and across classes
    probability[:4] = [0.0, 1.0, 1.0, 0.0]
    weight = rng.integers(0, 4, 40).astype(float)
    weight[:4] = 1
    threshold = float(rng.choice(probability))
    positive_levels, positive_rows = np.unique(probability[y == 1], return_inverse=True)
    negative_levels, negative_rows = np.unique(probability[y == 0], return_inverse=True)
    positives = np.bincount(positive_rows, weights=weight[y == 1])[None, :]
    negatives = np.bincount(negative_rows, weights=weight[y == 0])[None, :]

    values = _metrics_from_counts(positive_levels, positives, negative_levels, negatives, threshold)

    predicted = (probability >= threshold).astype(int)
    clipped = np.clip(probability, np.finfo(float).eps, 1 - np.finfo(float).eps)
    has_both_predictions = len(np.unique(predicted[weight > 0])) == 2
    expected = {
        "roc_auc": roc_auc_score(y, probability, sample_weight=weight),
        "pr_auc": average_precision_score(y, probability, sample_weight=weight),
        "f1": f1_score(y, predicted, sample_weight=weight, zero_division=0),
        "precision": precision_score(y, predicted, sample_weight=weight, zero_division=0),
        "recall": recall_score(y, predicted, sample_weight=weight, zero_division=0),
        "mcc": matthews_corrcoef(y, predicted, sample_weight=weight)
        if has_both_predictions
        else 0.0,
        "brier": brier_score_loss(y, probability, sample_weight=weight),
        "log_loss": log_loss(y, clipped, sample_weight=weight, labels=[0, 1]),
        "accuracy": accuracy_score(y, predicted, sample_weight=weight),
    }
    assert {name: float(value[0]) for name, value in values.items()} == pytest.approx(expected)


def test_check_gates_reports_pass_and_fail_per_gate():
    gates = [
        Gate(metric="roc_auc", operator=">=", value=0.75),
        Gate(metric="brier", operator="<", value=0.1),
    ]

    results = check_gates(gates, {"roc_auc": 0.8, "brier": 0.2})

    assert [(r.metric, r.passed) for r in results] == [("roc_auc", True), ("brier", False)]
    assert results[0].gate == "roc_auc >= 0.75"
    assert results[1].observed == 0.2


def test_check_gates_nan_metric_fails_even_a_permissive_gate():
    gates = [Gate(metric="roc_auc", operator=">=", value=0.0)]

    [result] = check_gates(gates, {"roc_auc": float("nan")})

    assert result.passed is False
    assert math.isnan(result.observed)


def test_check_gates_without_gates_is_empty():
    assert check_gates([], {"roc_auc": 0.5}) == []
