"""The decision threshold: which probability cut-off a project's policy picks on validation rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from tabops.project import MinCost, MinPrecision, MinRecall, ThresholdPolicy

_UNDEFINED_THRESHOLD = 0.5


class ThresholdChoice(BaseModel):
    """The chosen cut-off, the policy behind it, and how it did on the validation rows."""

    threshold: float
    policy: str
    reason: str
    met: bool
    validation: dict[str, float]


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
