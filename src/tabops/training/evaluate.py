"""Metrics of a scored held-out set, their bootstrap intervals, and the gates."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from tabops.project import Gate

# scikit-learn clips log-loss probabilities to the float64 epsilon; the bootstrap does the same.
_EPSILON = float(np.finfo(np.float64).eps)
# Resampled rows drawn at once by the bootstrap (16 MB of indices), to bound its memory.
_CHUNK_CELLS = 2_000_000


class EvaluationReport(BaseModel):
    """Metrics of one model on one labelled set at one threshold."""

    rows: int
    positives: int
    threshold: float
    metrics: dict[str, float]
    confusion: dict[str, int]
    intervals: dict[str, tuple[float, float]] = Field(default_factory=dict)


class GateResult(BaseModel):
    """One gate and whether the observed metric passed it."""

    gate: str
    metric: str
    observed: float
    passed: bool


def evaluate_model(
    y_true: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    resamples: int = 0,
    seed: int = 0,
) -> EvaluationReport:
    """Threshold-free and thresholded metrics of positive-class probabilities.

    Args:
        y_true: Labels, 1 for the positive class and 0 otherwise.
        probability: Positive-class probabilities of the same rows.
        threshold: Rows with ``probability >= threshold`` are predicted positive.
        resamples: Bootstrap resamples for 95% intervals of every metric; 0 skips them.
        seed: Seed of the bootstrap.

    Returns:
        The report; ``roc_auc`` and ``pr_auc`` are NaN when the set holds a single class.
    """
    y_true = np.asarray(y_true, dtype=int)
    probability = np.asarray(probability, dtype=float)
    predicted = (probability >= threshold).astype(int)
    has_both = len(np.unique(y_true)) == 2
    tn, fp, fn, tp = confusion_matrix(y_true, predicted, labels=[0, 1]).ravel()
    clipped = np.clip(probability, _EPSILON, 1 - _EPSILON)
    metrics = {
        "roc_auc": float(roc_auc_score(y_true, probability)) if has_both else float("nan"),
        "pr_auc": float(average_precision_score(y_true, probability)) if has_both else float("nan"),
        "f1": float(f1_score(y_true, predicted, zero_division=0)),
        "precision": float(precision_score(y_true, predicted, zero_division=0)),
        "recall": float(recall_score(y_true, predicted, zero_division=0)),
        "mcc": _matthews(tn, fp, fn, tp),
        "brier": float(brier_score_loss(y_true, probability)),
        "log_loss": float(log_loss(y_true, clipped, labels=[0, 1])),
        "accuracy": float(accuracy_score(y_true, predicted)),
    }
    intervals = bootstrap_intervals(y_true, probability, threshold, resamples, seed)
    return EvaluationReport(
        rows=len(y_true),
        positives=int(y_true.sum()),
        threshold=threshold,
        metrics=metrics,
        confusion={"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        intervals=intervals,
    )


def _matthews(tn: int, fp: int, fn: int, tp: int) -> float:
    """Matthews correlation from the confusion matrix; 0 when undefined, as scikit-learn."""
    denominator = float(tp + fp) * float(tp + fn) * float(tn + fp) * float(tn + fn)
    if denominator == 0:
        return 0.0
    return float((tp * tn - fp * fn) / np.sqrt(denominator))


def bootstrap_intervals(
    y_true: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of every metric that `evaluate_model` reports.

    Resampling is stratified by class: the positives and the negatives are each resampled with
    replacement to their own count, so every resample holds both classes (when the set does)
    and the ranking metrics are defined in all of them. A resample is summarised by how often
    it draws each distinct probability of each class, and every metric is computed from those
    counts with numpy rather than by calling scikit-learn once per resample and metric.

    Args:
        y_true: Labels, 1 for the positive class and 0 otherwise.
        probability: Positive-class probabilities of the same rows.
        threshold: Rows with ``probability >= threshold`` are predicted positive.
        resamples: Number of bootstrap resamples; 0 returns an empty dict.
        seed: Seed of the random generator, for reproducible intervals.
        confidence: Coverage of each interval, between 0 and 1.

    Returns:
        Metric name -> (lower, upper). ``roc_auc`` and ``pr_auc`` are (NaN, NaN) when the set
        holds a single class.

    Raises:
        ValueError: ``resamples`` is negative, ``confidence`` is not in (0, 1), or the set is
            empty or its arrays differ in length while resamples were asked for.
    """
    if resamples < 0:
        raise ValueError(f"resamples must be 0 or more, not {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, not {confidence}")
    if resamples == 0:
        return {}
    y = np.asarray(y_true, dtype=int).ravel()
    scores = np.asarray(probability, dtype=float).ravel()
    if len(y) == 0 or len(y) != len(scores):
        raise ValueError(f"cannot bootstrap {len(y)} labels with {len(scores)} probabilities")
    positive_levels, positive_rows = np.unique(scores[y == 1], return_inverse=True)
    negative_levels, negative_rows = np.unique(scores[y == 0], return_inverse=True)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // len(y))
    batches = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        positives = _resample_counts(rng, positive_rows, len(positive_levels), size)
        negatives = _resample_counts(rng, negative_rows, len(negative_levels), size)
        batches.append(
            _metrics_from_counts(positive_levels, positives, negative_levels, negatives, threshold)
        )
    tail = (1 - confidence) / 2 * 100
    intervals = {}
    for name in batches[0]:
        values = np.concatenate([batch[name] for batch in batches])
        if np.isnan(values).any():
            intervals[name] = (float("nan"), float("nan"))
            continue
        lower, upper = np.percentile(values, [tail, 100 - tail])
        intervals[name] = (float(lower), float(upper))
    return intervals


def _resample_counts(
    rng: np.random.Generator, level_of_row: np.ndarray, n_levels: int, resamples: int
) -> np.ndarray:
    """How often each resample of one class's rows, drawn with replacement, hits each level.

    Args:
        rng: The random generator.
        level_of_row: Index of each row's probability among the class's distinct levels.
        n_levels: Number of distinct levels.
        resamples: Number of resamples.

    Returns:
        A ``(resamples, n_levels)`` array of counts; each row sums to ``len(level_of_row)``.
    """
    rows = len(level_of_row)
    if rows == 0:
        return np.zeros((resamples, n_levels))
    drawn = level_of_row[rng.integers(0, rows, size=(resamples, rows))]
    # One bincount for all resamples: offset each resample into its own block of levels.
    drawn += np.arange(resamples)[:, None] * n_levels
    counts = np.bincount(drawn.ravel(), minlength=resamples * n_levels)
    return counts.reshape(resamples, n_levels).astype(float)


def _metrics_from_counts(
    positive_levels: np.ndarray,
    positives: np.ndarray,
    negative_levels: np.ndarray,
    negatives: np.ndarray,
    threshold: float,
) -> dict[str, np.ndarray]:
    """The metrics of `evaluate_model` for ``k`` weightings of the same distinct probabilities.

    Args:
        positive_levels: Distinct probabilities of the positive rows, ascending.
        positives: ``(k, len(positive_levels))`` weight of the positives at each probability.
        negative_levels: Distinct probabilities of the negative rows, ascending.
        negatives: ``(k, len(negative_levels))`` weight of the negatives at each probability.
        threshold: Probabilities at or above it are predicted positive.

    Returns:
        Metric name -> ``k`` values, named and defined as in `evaluate_model`.
    """
    n_positive, n_negative = positives.sum(axis=1), negatives.sum(axis=1)
    rows = n_positive + n_negative
    tp = positives[:, positive_levels >= threshold].sum(axis=1)
    fp = negatives[:, negative_levels >= threshold].sum(axis=1)
    fn, tn = n_positive - tp, n_negative - fp
    has_both = (n_positive > 0) & (n_negative > 0)

    # Negatives scored below, and at or below, each positive level.
    negative_cumulative = np.hstack([np.zeros((len(rows), 1)), np.cumsum(negatives, axis=1)])
    below = negative_cumulative[:, np.searchsorted(negative_levels, positive_levels, "left")]
    at_or_below = negative_cumulative[:, np.searchsorted(negative_levels, positive_levels, "right")]
    # ROC AUC is the chance that a positive outranks a negative, a tie counting one half.
    pairs = (positives * (below + at_or_below) / 2).sum(axis=1)
    # Average precision: precision at each positive level, weighted by the recall it adds.
    positives_at_or_above = n_positive[:, None] - (np.cumsum(positives, axis=1) - positives)
    negatives_at_or_above = n_negative[:, None] - below
    precision_at = _ratio(positives_at_or_above, positives_at_or_above + negatives_at_or_above)
    gained = (positives * precision_at).sum(axis=1)

    positive_clipped = np.clip(positive_levels, _EPSILON, 1 - _EPSILON)
    negative_clipped = np.clip(negative_levels, _EPSILON, 1 - _EPSILON)
    brier = positives @ (1 - positive_levels) ** 2 + negatives @ negative_levels**2
    loss = positives @ -np.log(positive_clipped) + negatives @ -np.log1p(-negative_clipped)
    mcc_denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    nan = np.full(len(rows), np.nan)
    return {
        "roc_auc": np.where(has_both, _ratio(pairs, n_positive * n_negative), nan),
        "pr_auc": np.where(has_both, _ratio(gained, n_positive), nan),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "mcc": _ratio(tp * tn - fp * fn, mcc_denominator),
        "brier": brier / rows,
        "log_loss": loss / rows,
        "accuracy": (tp + tn) / rows,
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise division that gives 0 where the denominator is 0, as ``zero_division=0``."""
    result: np.ndarray = np.divide(
        numerator,
        denominator,
        out=np.zeros(np.broadcast(numerator, denominator).shape),
        where=denominator > 0,
    )
    return result


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
