"""The decision threshold: which probability cut-off a project's policy picks on validation rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from tabops.project import MinCost, MinPrecision, MinRecall, ThresholdPolicy
from tabops.training.evaluate import EvaluationReport

_UNDEFINED_THRESHOLD = 0.5
TOP_SHARES = (0.001, 0.01, 0.05)
"""Shares of the highest-scored rows that the operating points flag."""
TARGET_RECALLS = (0.5, 0.8, 0.9)
"""Recalls that the operating points reach."""


class ThresholdChoice(BaseModel):
    """The chosen cut-off, the policy behind it, and how it did on the validation rows."""

    threshold: float
    policy: str
    reason: str
    met: bool
    validation: dict[str, float]


class OperatingPoint(BaseModel):
    """A cut-off a reader might pick instead, and how it does on one set of rows.

    ``share`` is set for a ``top_share`` point, ``target_recall`` for a ``target_recall``
    one. Every row scoring ``>= threshold`` is flagged, ties included, so ``flagged`` may
    exceed the share. Precision is 0 when nothing is flagged, recall 0 without positives.
    """

    kind: Literal["top_share", "target_recall"]
    share: float | None = None
    target_recall: float | None = None
    threshold: float
    flagged: int
    true_positives: int
    precision: float
    recall: float

    @property
    def label(self) -> str:
        """``top 1%`` or ``recall 0.8``, for a table."""
        if self.kind == "top_share":
            return f"top {100 * (self.share or 0):g}%"
        return f"recall {self.target_recall or 0:g}"


@dataclass(frozen=True)
class _Curve:
    """Confusion counts at every candidate threshold, thresholds ascending."""

    thresholds: npt.NDArray[np.float64]
    tp: npt.NDArray[np.float64]
    fp: npt.NDArray[np.float64]
    positives: int

    @property
    def fn(self) -> npt.NDArray[np.float64]:
        return self.positives - self.tp

    @property
    def precision(self) -> npt.NDArray[np.float64]:
        # The cut-off above every probability flags no row (tp = 0); its precision counts as 0.
        return self.tp / np.maximum(self.tp + self.fp, 1)

    @property
    def recall(self) -> npt.NDArray[np.float64]:
        return self.tp / self.positives

    @property
    def f1(self) -> npt.NDArray[np.float64]:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)


def choose_threshold(
    y_true: np.ndarray, probability: np.ndarray, policy: ThresholdPolicy = "max_f1"
) -> ThresholdChoice:
    """Pick the cut-off that a threshold policy asks for; ``probability >= threshold`` is positive.

    The candidates are 0, every distinct probability and the value just above the largest, so
    "flag every row" and "flag no row" are both on the table. Where candidates score the same,
    the lower threshold wins: it flags more rows for the same F1 or cost.

    Args:
        y_true: Labels, 1 for the positive class and 0 otherwise.
        probability: Positive-class probabilities of the same rows.
        policy: ``"max_f1"`` maximises F1; ``MinRecall`` takes the highest threshold whose
            recall reaches the floor (the best precision at that recall); ``MinPrecision`` takes
            the lowest threshold whose precision reaches the floor (the most recall at that
            precision); ``MinCost`` minimises ``false_positive * FP + false_negative * FN``.

    Returns:
        The choice. ``met`` is False when the policy could not be met and the max-F1 cut-off
        was used instead, or when the rows hold a single class and 0.5 was used.

    Raises:
        ValueError: The arrays differ in length, labels are not 0/1, or probabilities fall
            outside [0, 1].
    """
    y, scores = _check_inputs(y_true, probability)
    name = _describe(policy)
    rows = f"{len(y)} validation rows"
    positives = int(y.sum())
    if positives in (0, len(y)):
        return _choice(
            _UNDEFINED_THRESHOLD,
            name,
            f"the {rows} hold a single class, so no cut-off can be learned; using 0.5",
            met=False,
            y=y,
            scores=scores,
            policy=policy,
        )
    curve = _curve(y, scores)
    index, met, reason = _pick(curve, policy, rows)
    return _choice(
        curve.thresholds[index], name, reason, met=met, y=y, scores=scores, policy=policy
    )


def operating_points(y_true: np.ndarray, probability: np.ndarray) -> list[OperatingPoint]:
    """Cut-offs that flag the top 0.1%, 1% and 5% of scores or reach recall 0.5, 0.8 and 0.9.

    A top share flags at least one row, however few the rows. A recall target takes the
    highest threshold whose recall reaches it, as ``MinRecall`` does; rows without a
    positive get no recall points.

    Raises:
        ValueError: As ``choose_threshold`` does.
    """
    y, scores = _check_inputs(y_true, probability)
    if len(y) == 0:
        return []
    curve = _curve(y, scores)
    flagged = curve.tp + curve.fp
    points = []
    for share in TOP_SHARES:
        # Rounded first so that 0.05 * 100 rows asks for 5 rows, not 6.
        wanted = max(1, math.ceil(round(share * len(y), 9)))
        index = int(np.flatnonzero(flagged >= wanted)[-1])
        points.append(_point(curve, index, kind="top_share", share=share))
    if curve.positives:
        for target in TARGET_RECALLS:
            index = int(np.flatnonzero(curve.recall >= target)[-1])
            points.append(_point(curve, index, kind="target_recall", target_recall=target))
    return points


def evaluate_operating_points(
    points: Sequence[OperatingPoint], y_true: np.ndarray, probability: np.ndarray
) -> list[OperatingPoint]:
    """The same cut-offs measured on other rows, such as the test rows.

    Raises:
        ValueError: As ``choose_threshold`` does.
    """
    y, scores = _check_inputs(y_true, probability)
    thresholds = np.array([point.threshold for point in points], dtype=float)
    # Rows scoring below a threshold, counted by binary search in the sorted scores.
    flagged = len(scores) - np.searchsorted(np.sort(scores), thresholds, side="left")
    positive_scores = np.sort(scores[y == 1])
    tp = len(positive_scores) - np.searchsorted(positive_scores, thresholds, side="left")
    return [
        point.model_copy(update=_counts(int(rows), int(hits), len(positive_scores)))
        for point, rows, hits in zip(points, flagged, tp, strict=True)
    ]


def explain_missed_positives(reports: Mapping[str, EvaluationReport]) -> list[str]:
    """A note for each set of rows holding positives of which the threshold catches none.

    Args:
        reports: Evaluations at the chosen threshold by the name of their rows, such as
            ``{"validation": ..., "test": ...}``.
    """
    notes = []
    for rows, report in reports.items():
        if report.positives == 0 or report.confusion.get("tp", 0) > 0:
            continue
        false_alarms = report.confusion.get("fp", 0)
        flagged = (
            "it flags no row"
            if false_alarms == 0
            else f"it flags {false_alarms} row{'s' * (false_alarms != 1)}, all false alarms"
        )
        missed = (
            "the only positive"
            if report.positives == 1
            else f"none of the {report.positives} positives"
        )
        notes.append(
            f"the threshold {report.threshold:.4g} catches {missed} of the {rows} rows "
            f"({flagged}): at this cut-off the model flags nothing useful; see the operating "
            "points, or set train.threshold to {min_recall: 0.3}"
        )
    return notes


def _point(
    curve: _Curve,
    index: int,
    kind: Literal["top_share", "target_recall"],
    share: float | None = None,
    target_recall: float | None = None,
) -> OperatingPoint:
    """The operating point at one candidate of the curve."""
    tp, flagged = int(curve.tp[index]), int(curve.tp[index] + curve.fp[index])
    return OperatingPoint.model_validate(
        {"kind": kind, "share": share, "target_recall": target_recall}
        | {"threshold": float(curve.thresholds[index])}
        | _counts(flagged, tp, curve.positives)
    )


def _counts(flagged: int, true_positives: int, positives: int) -> dict[str, float]:
    """Flagged rows, true positives, precision and recall of one cut-off."""
    return {
        "flagged": flagged,
        "true_positives": true_positives,
        "precision": true_positives / flagged if flagged else 0.0,
        "recall": true_positives / positives if positives else 0.0,
    }


def _pick(curve: _Curve, policy: ThresholdPolicy, rows: str) -> tuple[int, bool, str]:
    """The index of the chosen candidate, whether the policy was met, and why."""
    best_f1 = int(np.argmax(curve.f1))
    highest_f1 = f"highest F1 ({curve.f1[best_f1]:.3f})"
    if isinstance(policy, MinRecall):
        # Recall cannot rise with the threshold and is 1 at threshold 0, so a candidate exists.
        index = int(np.flatnonzero(curve.recall >= policy.min_recall)[-1])
        reason = (
            f"highest threshold with recall >= {policy.min_recall:g}: recall "
            f"{curve.recall[index]:.3f}, precision {curve.precision[index]:.3f} on {rows}"
        )
        return index, True, reason
    if isinstance(policy, MinPrecision):
        reached = np.flatnonzero(curve.precision >= policy.min_precision)
        if len(reached) == 0:
            reason = (
                f"no threshold reaches precision {policy.min_precision:g} on {rows}; "
                f"fell back to the {highest_f1}"
            )
            return best_f1, False, reason
        index = int(reached[0])
        reason = (
            f"lowest threshold with precision >= {policy.min_precision:g}: precision "
            f"{curve.precision[index]:.3f}, recall {curve.recall[index]:.3f} on {rows}"
        )
        return index, True, reason
    if isinstance(policy, MinCost):
        cost = policy.cost.false_positive * curve.fp + policy.cost.false_negative * curve.fn
        index = int(np.argmin(cost))
        reason = (
            f"lowest cost {cost[index]:g} ({curve.fp[index]:g} false positives, "
            f"{curve.fn[index]:g} false negatives) on {rows}"
        )
        return index, True, reason
    return best_f1, True, f"{highest_f1} on {rows}"


def _check_inputs(y_true: np.ndarray, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 integers and probabilities as floats, after checking both."""
    y = np.asarray(y_true).astype(int, copy=False).ravel()
    scores = np.asarray(probability, dtype=float).ravel()
    if len(y) != len(scores):
        raise ValueError(f"{len(y)} labels but {len(scores)} probabilities")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if not ((scores >= 0) & (scores <= 1)).all():
        raise ValueError("probabilities must lie in [0, 1]")
    return y, scores


def _curve(y: np.ndarray, scores: np.ndarray) -> _Curve:
    """Confusion counts at every candidate threshold in one sort and two cumulative sums."""
    order = np.argsort(-scores, kind="stable")
    descending, labels = scores[order], y[order]
    tp_cumulative = np.cumsum(labels)
    fp_cumulative = np.arange(1, len(labels) + 1) - tp_cumulative
    # A threshold flags the whole group of tied scores, so read counts at each group's end.
    group_ends = np.flatnonzero(np.r_[descending[1:] != descending[:-1], True])
    thresholds = descending[group_ends][::-1]
    tp = tp_cumulative[group_ends][::-1]
    fp = fp_cumulative[group_ends][::-1]
    positives, negatives = int(tp_cumulative[-1]), int(fp_cumulative[-1])
    if thresholds[0] > 0:
        thresholds, tp, fp = np.r_[0.0, thresholds], np.r_[positives, tp], np.r_[negatives, fp]
    above_all = np.nextafter(thresholds[-1], np.inf)
    return _Curve(
        thresholds=np.r_[thresholds, above_all],
        tp=np.r_[tp, 0].astype(float),
        fp=np.r_[fp, 0].astype(float),
        positives=positives,
    )


def _choice(
    threshold: float,
    name: str,
    reason: str,
    met: bool,
    y: np.ndarray,
    scores: np.ndarray,
    policy: ThresholdPolicy,
) -> ThresholdChoice:
    """A choice with its validation precision, recall and F1 (and cost) at the threshold."""
    flagged = scores >= threshold
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    fn = int((~flagged & (y == 1)).sum())
    validation = {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
    }
    if isinstance(policy, MinCost):
        validation["cost"] = policy.cost.false_positive * fp + policy.cost.false_negative * fn
    return ThresholdChoice(
        threshold=float(threshold), policy=name, reason=reason, met=met, validation=validation
    )


def _describe(policy: ThresholdPolicy) -> str:
    """The policy as a short label, such as ``min_recall 0.9`` or ``cost fp=1 fn=20``."""
    if isinstance(policy, MinRecall):
        return f"min_recall {policy.min_recall:g}"
    if isinstance(policy, MinPrecision):
        return f"min_precision {policy.min_precision:g}"
    if isinstance(policy, MinCost):
        return f"cost fp={policy.cost.false_positive:g} fn={policy.cost.false_negative:g}"
    return policy
