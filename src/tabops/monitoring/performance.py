"""Performance of served predictions: realized from late labels, estimated without them.

``performance`` measures labeled predictions; ``compare_with_training`` sets the result
beside the version's test metrics and their bootstrap intervals. ``EstimateAccumulator``
estimates the same metrics from the probabilities alone, streaming over the prediction log.
Every value is a plain float, or None where the metric is undefined (never NaN).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from sklearn.metrics import average_precision_score, roc_auc_score

from tabops.model.manifest import Manifest

CALIBRATION_BINS = 10
"""Equal-width probability bins of the expected calibration error."""
ESTIMATE_BINS = 1_000
"""Probability bins an estimate keeps: its memory, whatever the rows."""
LOWER_IS_BETTER = frozenset({"brier", "calibration_error", "log_loss"})
"""Metrics where a larger value is worse (all others: larger is better)."""

Metrics = dict[str, float | int | None]


def performance(probabilities: npt.ArrayLike, outcomes: npt.ArrayLike, threshold: float) -> Metrics:
    """The realized metrics of labeled predictions.

    Args:
        probabilities: Positive-class probability of each prediction.
        outcomes: Whether each prediction's label turned out to be the positive class.
        threshold: The cut-off at or above which a prediction is positive.

    Returns:
        ``rows``, ``positives``, ``roc_auc``, ``pr_auc`` (average precision), ``precision``,
        ``recall``, ``f1``, ``accuracy`` at the threshold, ``brier`` and
        ``calibration_error`` (ECE over 10 equal-width bins); None where undefined: the AUCs
        when one class only is present, precision without predicted positives, recall
        without positives, and everything but the counts without rows.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(outcomes, dtype=bool)
    decided = p >= threshold
    tp = int(np.count_nonzero(decided & y))
    fp = int(np.count_nonzero(decided & ~y))
    fn = int(np.count_nonzero(~decided & y))
    rows, positives = len(p), int(np.count_nonzero(y))
    has_both = 0 < positives < rows
    return {
        "rows": rows,
        "positives": positives,
        "roc_auc": float(roc_auc_score(y, p)) if has_both else None,
        "pr_auc": float(average_precision_score(y, p)) if has_both else None,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": _ratio(rows - fp - fn, rows),
        "brier": float(np.mean((p - y) ** 2)) if rows else None,
        "calibration_error": calibration_error(p, y) if rows else None,
    }


def calibration_error(probabilities: npt.ArrayLike, outcomes: npt.ArrayLike) -> float:
    """Expected calibration error: the row-weighted gap between mean probability and rate.

    Bins are 10 equal-width slices of [0, 1]; a probability of exactly 1 falls in the last.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(outcomes, dtype=np.float64)
    bins = np.clip((p * CALIBRATION_BINS).astype(np.int64), 0, CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    gaps = np.bincount(bins, weights=p, minlength=CALIBRATION_BINS) - np.bincount(
        bins, weights=y, minlength=CALIBRATION_BINS
    )
    return float(np.abs(gaps).sum() / max(counts.sum(), 1))


def compare_with_training(realized: Metrics, manifest: Manifest) -> dict[str, dict[str, Any]]:
    """Each realized metric beside the version's test value and 95% bootstrap interval.

    ``below_interval`` is true when the metric is worse than the whole interval: below its
    lower end, or above its upper end for metrics where lower is better (``brier``). It is
    None when the metric or the interval is unknown.
    """
    compared = {}
    for name, value in realized.items():
        if name in ("rows", "positives") or name not in manifest.metrics:
            continue
        interval = _finite_interval(manifest.intervals.get(name))
        below = None
        if value is not None and interval is not None:
            below = value > interval[1] if name in LOWER_IS_BETTER else value < interval[0]
        compared[name] = {
            "value": value,
            "training": _finite(manifest.metrics[name]),
            "interval": interval,
            "below_interval": below,
        }
    return compared


class EstimateAccumulator:
    """Label-free estimates of performance, as confidence-based estimation (NannyML's CBPE).

    Assumes the probabilities are calibrated (a row of probability p is positive with
    chance p) and that the relation between features and outcome has not changed since
    training (no concept shift); shifts of the inputs alone are what it follows. Under
    that assumption a positive decision is a true positive with chance p, a negative one
    a false negative with chance p, and the expected confusion matrix gives precision,
    recall, F1 and accuracy; the Brier score expects p(1 - p) a row. The ROC AUC is the
    expected rate of correctly ordered positive-negative pairs over a fixed histogram of
    ``bins`` probability bins (pairs within one bin count half), so memory stays flat
    however many rows stream through.
    """

    def __init__(self, threshold: float, bins: int = ESTIMATE_BINS) -> None:
        self.threshold = threshold
        self.bins = bins
        self._counts = np.zeros(bins, dtype=np.int64)
        self._sums = np.zeros(bins, dtype=np.float64)
        self._rows = 0
        self._true_positives = self._false_positives = 0.0
        self._false_negatives = self._true_negatives = 0.0
        self._brier = 0.0

    def add(self, probabilities: npt.ArrayLike, positive: npt.ArrayLike | None = None) -> None:
        """Take a batch of probabilities and their decisions (default: at the threshold).

        Rows whose probability is missing (NaN) are skipped.
        """
        p = np.asarray(probabilities, dtype=np.float64)
        decided = p >= self.threshold if positive is None else np.asarray(positive, dtype=bool)
        known = ~np.isnan(p)
        p, decided = np.clip(p[known], 0.0, 1.0), decided[known]
        bins = np.minimum((p * self.bins).astype(np.int64), self.bins - 1)
        self._counts += np.bincount(bins, minlength=self.bins)
        self._sums += np.bincount(bins, weights=p, minlength=self.bins)
        self._rows += len(p)
        self._true_positives += float(p[decided].sum())
        self._false_positives += float((1 - p[decided]).sum())
        self._false_negatives += float(p[~decided].sum())
        self._true_negatives += float((1 - p[~decided]).sum())
        self._brier += float((p * (1 - p)).sum())

    def add_batch(self, batch: pa.RecordBatch) -> None:
        """Take a prediction log batch with ``probability`` and ``positive`` columns."""
        probability = batch.column("probability").to_numpy(zero_copy_only=False)
        positive = batch.column("positive").fill_null(False).to_numpy(zero_copy_only=False)
        self.add(np.asarray(probability, dtype=np.float64), positive)

    def merge(self, other: EstimateAccumulator) -> EstimateAccumulator:
        """Add another accumulator's counts (another window or worker) to this one.

        Raises:
            ValueError: the other was made with another threshold or number of bins.
        """
        if (other.threshold, other.bins) != (self.threshold, self.bins):
            raise ValueError("cannot merge estimates made with another threshold or bins")
        self._counts += other._counts
        self._sums += other._sums
        self._rows += other._rows
        self._true_positives += other._true_positives
        self._false_positives += other._false_positives
        self._false_negatives += other._false_negatives
        self._true_negatives += other._true_negatives
        self._brier += other._brier
        return self

    def result(self) -> dict[str, Any]:
        """The estimates so far, each named ``estimated_<metric>``, marked ``estimate``."""
        tp, fp = self._true_positives, self._false_positives
        fn, tn = self._false_negatives, self._true_negatives
        rows = self._rows
        return {
            "estimate": True,
            "rows": rows,
            "estimated_positives": tp + fn if rows else None,
            "estimated_precision": _ratio(tp, tp + fp),
            "estimated_recall": _ratio(tp, tp + fn),
            "estimated_f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "estimated_accuracy": _ratio(tp + tn, rows),
            "estimated_roc_auc": self._roc_auc(),
            "estimated_brier": self._brier / rows if rows else None,
        }

    def _roc_auc(self) -> float | None:
        positives = self._sums[::-1]  # expected positives per bin, highest probability first
        negatives = self._counts[::-1] - positives
        total_positive, total_negative = positives.sum(), negatives.sum()
        if total_positive * total_negative <= 0:
            return None
        above = np.cumsum(positives) - positives  # expected positives in higher bins
        pairs = float(negatives @ above + 0.5 * (negatives @ positives))
        return _ratio(pairs, float(total_positive * total_negative))


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator > 0 else None


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _finite_interval(interval: list[float] | None) -> list[float] | None:
    if interval is None or len(interval) != 2 or not all(map(math.isfinite, interval)):
        return None
    return [float(interval[0]), float(interval[1])]
