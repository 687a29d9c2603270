"""Held-out metrics, the max-F1 threshold and the gates, on hand-made scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tabops.project import Gate
from tabops.training.evaluate import check_gates, choose_threshold, evaluate_model

Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8])


def test_choose_threshold_maximises_f1():
    # Cut-offs: 0.1 -> F1 0.667, 0.35 -> F1 0.8, 0.4 -> F1 0.5, 0.8 -> F1 0.667.
    assert choose_threshold(Y, P) == pytest.approx(0.35)


def test_choose_threshold_picks_perfect_separation_cut_off():
    y = np.array([0, 0, 0, 1, 1])
    probability = np.array([0.05, 0.2, 0.3, 0.6, 0.9])

    assert choose_threshold(y, probability) == pytest.approx(0.6)


def test_choose_threshold_with_a_single_class_is_one_half():
    assert choose_threshold(np.array([0, 0, 0]), np.array([0.1, 0.7, 0.3])) == 0.5


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
        "accuracy": 0.75,
    }
    assert report.metrics == pytest.approx(expected)


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
