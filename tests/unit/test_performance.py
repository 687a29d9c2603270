"""Realized metrics against scikit-learn, their undefined cases, and label-free estimates."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from conftest import stub_manifest
from tabops.monitoring.performance import (
    EstimateAccumulator,
    calibration_error,
    compare_with_training,
    performance,
)


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    probability = rng.uniform(size=500)
    outcome = rng.uniform(size=500) < probability
    return probability, outcome


def test_performance_matches_scikit_learn(scored):
    probability, outcome = scored
    threshold = 0.4
    decided = probability >= threshold
    found = performance(probability, outcome, threshold)
    assert found["rows"] == 500
    assert found["positives"] == int(outcome.sum())
    assert found["roc_auc"] == pytest.approx(roc_auc_score(outcome, probability))
    assert found["pr_auc"] == pytest.approx(average_precision_score(outcome, probability))
    assert found["precision"] == pytest.approx(precision_score(outcome, decided))
    assert found["recall"] == pytest.approx(recall_score(outcome, decided))
    assert found["f1"] == pytest.approx(f1_score(outcome, decided))
    assert found["accuracy"] == pytest.approx(accuracy_score(outcome, decided))
    assert found["brier"] == pytest.approx(brier_score_loss(outcome, probability))


def test_performance_leaves_undefined_metrics_none_and_json_safe():
    found = performance([0.1, 0.2, 0.3], [False, False, False], 0.5)
    assert found["roc_auc"] is None
    assert found["pr_auc"] is None
    assert found["precision"] is None  # nothing decided positive
    assert found["recall"] is None  # no positive outcome
    assert found["f1"] is None
    assert found["accuracy"] == 1.0
    json.dumps(found, allow_nan=False)
    empty = performance([], [], 0.5)
    assert empty["rows"] == 0
    assert all(empty[name] is None for name in empty if name not in ("rows", "positives"))


def test_calibration_error_weights_each_bin_gap_by_its_rows():
    # Bin [0.2, 0.3): mean 0.25, rate 0.5 -> gap 0.25 over 2 rows; bin [0.9, 1]: 1.0 vs 1.0.
    probability = [0.2, 0.3 - 1e-9, 1.0, 1.0]
    outcome = [True, False, True, True]
    assert calibration_error(probability, outcome) == pytest.approx(0.25 * 2 / 4)
    rng = np.random.default_rng(3)
    calibrated = rng.uniform(size=100_000)
    assert calibration_error(calibrated, rng.uniform(size=100_000) < calibrated) < 0.01


def test_compare_with_training_flags_metrics_worse_than_the_interval():
    manifest = stub_manifest(
        metrics={"roc_auc": 0.9, "brier": 0.1, "recall": 0.8, "f1": float("nan")},
        intervals={"roc_auc": [0.85, 0.95], "brier": [0.08, 0.12], "f1": [float("nan")] * 2},
    )
    realized = {"rows": 10, "roc_auc": 0.7, "brier": 0.2, "recall": 0.5, "f1": 0.6}
    compared = compare_with_training(realized, manifest)
    assert compared["roc_auc"] == {
        "value": 0.7,
        "training": 0.9,
        "interval": [0.85, 0.95],
        "below_interval": True,
    }
    assert compared["brier"]["below_interval"] is True  # lower is better: 0.2 > 0.12
    assert compared["recall"]["below_interval"] is None  # no interval known
    assert compared["f1"]["training"] is None
    assert "rows" not in compared
    healthy = compare_with_training({"roc_auc": 0.9, "brier": 0.09}, manifest)
    assert not healthy["roc_auc"]["below_interval"]
    assert not healthy["brier"]["below_interval"]


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_estimates_match_realized_metrics_on_calibrated_data(threshold):
    rng = np.random.default_rng(11)
    probability = rng.beta(1.2, 3.0, size=200_000)
    outcome = rng.uniform(size=probability.size) < probability
    accumulator = EstimateAccumulator(threshold)
    for chunk in np.array_split(np.arange(probability.size), 7):  # streamed in batches
        accumulator.add(probability[chunk], probability[chunk] >= threshold)
    estimated = accumulator.result()
    realized = performance(probability, outcome, threshold)
    assert estimated["estimate"] is True
    assert estimated["rows"] == realized["rows"]
    # Sampling noise alone: precision at 0.7 rests on about 7,000 decided rows (sd 0.005).
    for metric in ("precision", "recall", "f1", "accuracy", "roc_auc", "brier"):
        assert estimated[f"estimated_{metric}"] == pytest.approx(realized[metric], abs=0.02)
    assert estimated["estimated_positives"] == pytest.approx(realized["positives"], rel=0.02)


def test_estimates_drift_away_when_probabilities_are_overconfident():
    rng = np.random.default_rng(5)
    probability = rng.uniform(size=50_000)
    outcome = rng.uniform(size=probability.size) < 0.5  # probabilities say nothing
    accumulator = EstimateAccumulator(0.5)
    accumulator.add(probability)
    realized = performance(probability, outcome, 0.5)
    assert accumulator.result()["estimated_roc_auc"] > realized["roc_auc"] + 0.2


def test_estimate_accumulator_reads_log_batches_and_starts_empty():
    accumulator = EstimateAccumulator(0.5, bins=100)
    empty = accumulator.result()
    assert empty["rows"] == 0
    assert all(value is None for key, value in empty.items() if key.startswith("estimated_"))
    batch = pa.record_batch(
        {"probability": [0.9, 0.2, None, 0.6], "positive": [True, False, None, False]}
    )
    accumulator.add_batch(batch)
    found = accumulator.result()
    assert found["rows"] == 3
    # One positive decision (0.9): expected precision 0.9; positives expected 0.9+0.2+0.6.
    assert found["estimated_precision"] == pytest.approx(0.9)
    assert found["estimated_positives"] == pytest.approx(1.7)
    assert found["estimated_recall"] == pytest.approx(0.9 / 1.7)
    json.dumps(found, allow_nan=False)


def test_merged_accumulators_equal_one_over_all_rows():
    rng = np.random.default_rng(2)
    probability = rng.uniform(size=10_000)
    whole, first, second = (EstimateAccumulator(0.4) for _ in range(3))
    whole.add(probability)
    first.add(probability[:3_000])
    second.add(probability[3_000:])
    assert first.merge(second).result() == pytest.approx(whole.result())
    with pytest.raises(ValueError, match="threshold"):
        first.merge(EstimateAccumulator(0.5))
