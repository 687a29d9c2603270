"""Metrics of a scored held-out set, the decision threshold, and the gates."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from tabops.project import Gate


class EvaluationReport(BaseModel):
    """Metrics of one model on one labelled set at one threshold."""

    rows: int
    positives: int
    threshold: float
    metrics: dict[str, float]
    confusion: dict[str, int]


class GateResult(BaseModel):
    """One gate and whether the observed metric passed it."""

    gate: str
    metric: str
    observed: float
    passed: bool


def evaluate_model(
    y_true: np.ndarray, probability: np.ndarray, threshold: float
) -> EvaluationReport:
    """Threshold-free and thresholded metrics of positive-class probabilities."""
    y_true = np.asarray(y_true, dtype=int)
    predicted = (probability >= threshold).astype(int)
    has_both = len(np.unique(y_true)) == 2
    tn, fp, fn, tp = confusion_matrix(y_true, predicted, labels=[0, 1]).ravel()
    metrics = {
        "roc_auc": float(roc_auc_score(y_true, probability)) if has_both else float("nan"),
        "pr_auc": float(average_precision_score(y_true, probability)) if has_both else float("nan"),
        "f1": float(f1_score(y_true, predicted, zero_division=0)),
        "precision": float(precision_score(y_true, predicted, zero_division=0)),
        "recall": float(recall_score(y_true, predicted, zero_division=0)),
        "mcc": _matthews(tn, fp, fn, tp),
        "brier": float(brier_score_loss(y_true, probability)),
        "accuracy": float(accuracy_score(y_true, predicted)),
    }
    return EvaluationReport(
        rows=len(y_true),
        positives=int(y_true.sum()),
        threshold=threshold,
        metrics=metrics,
        confusion={"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    )


def _matthews(tn: int, fp: int, fn: int, tp: int) -> float:
    """Matthews correlation from the confusion matrix; 0 when undefined, as scikit-learn."""
    denominator = float(tp + fp) * float(tp + fn) * float(tn + fp) * float(tn + fn)
    if denominator == 0:
        return 0.0
    return float((tp * tn - fp * fn) / np.sqrt(denominator))


def choose_threshold(y_true: np.ndarray, probability: np.ndarray) -> float:
    """The probability cut-off that maximises F1 on a labelled set (0.5 when undefined)."""
    if len(np.unique(y_true)) < 2:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y_true, probability)
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(thresholds[int(np.argmax(f1))])


def check_gates(gates: list[Gate], metrics: dict[str, float]) -> list[GateResult]:
    """Check each gate against the held-out metrics; a NaN metric fails its gate."""
    results = []
    for gate in gates:
        observed = metrics[gate.metric]
        passed = not np.isnan(observed) and gate.passes(observed)
        results.append(
            GateResult(gate=str(gate), metric=gate.metric, observed=observed, passed=passed)
        )
    return results
