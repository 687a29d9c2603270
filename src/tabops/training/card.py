"""The model card: one self-contained HTML page describing a trained version, plots inline."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any

import jinja2
import numpy as np

from tabops.training.card_plots import TOP_FEATURES, draw_plots, finite_or_none
from tabops.training.threshold import OperatingPoint

_TEMPLATE = "templates/card.html.j2"
_METRICS = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall",
    "mcc": "MCC",
    "brier": "Brier score",
    "log_loss": "Log loss",
    "accuracy": "Accuracy",
}
_LOWER_IS_BETTER = frozenset({"brier", "log_loss"})
_SEVERITIES = ("info", "warning", "error")
_DASH = "\N{EN DASH}"  # shown for a missing or undefined number


@dataclass
class DataProfile:
    """Rows and positives per split, and one summary row per column of the training table."""

    rows: int
    rows_by_split: dict[str, int]
    positives_by_split: dict[str, int]
    columns: list[dict[str, Any]]


@dataclass
class ModelCard:
    """Everything the model card of one trained version shows; built by the trainer.

    Attributes:
        guards: data-quality findings that fired, each ``guard``, ``severity`` (``info``,
            ``warning`` or ``error``), ``column`` and ``message``.
        leaderboard: cross-validated candidates, each ``name``, ``params``, ``pr_auc_mean``,
            ``pr_auc_std``, ``roc_auc_mean``, ``roc_auc_std`` and ``fit_seconds``.
        calibration: ``method`` (``sigmoid``, ``isotonic`` or ``none``), ``kept``, and the
            validation ``brier_before`` and ``brier_after`` (None when nothing was tried).
        metrics: held-out test metrics; ``intervals`` their 95% bootstrap intervals, if any.
        confusion: ``tn``, ``fp``, ``fn`` and ``tp`` on the test rows at ``threshold``.
        y_test: test labels as 0/1; ``p_test`` the positive-class probabilities.
        importance: ``(feature, mean drop in PR AUC, std)`` from permutation importance.
        gates: each ``gate``, ``metric``, ``observed`` and ``passed``.
        metadata: shown as a table: data file and sha256, rows, timings, versions, commit.
        notes: what the run wants a reader to know (a search cut short by the time cap).
        threshold_warnings: notes saying the threshold catches no positive of some rows,
            shown again as a warning beside the threshold.
        operating_points: ``validation`` and ``test`` lists of the same cut-offs, each an
            ``OperatingPoint`` as a dict, chosen on the validation rows.
    """

    name: str
    created: str
    target: str
    negative_class: str
    positive_class: str
    profile: DataProfile
    guards: list[dict[str, Any]]
    leaderboard: list[dict[str, Any]]
    chosen: str
    chosen_reason: str
    split: str
    imbalance: str
    calibration: dict[str, Any]
    threshold: float
    threshold_policy: str
    threshold_reason: str
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    confusion: dict[str, int]
    y_test: np.ndarray
    p_test: np.ndarray
    importance: list[tuple[str, float, float]]
    gates: list[dict[str, Any]]
    metadata: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    threshold_warnings: list[str] = field(default_factory=list)
    operating_points: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def render_model_card(card: ModelCard) -> str:
    """One self-contained HTML document (inline CSS and images, no scripts, no links out)."""
    y = np.asarray(card.y_test, dtype=float).ravel()
    p = np.asarray(card.p_test, dtype=float).ravel()
    cells = {key: int(card.confusion.get(key, 0)) for key in ("tn", "fp", "fn", "tp")}
    return _template().render(
        card=card,
        created=_format_time(card.created),
        splits=_split_rows(card.profile),
        guards=[_guard_row(guard) for guard in card.guards],
        metrics=_metric_rows(card.metrics, card.intervals),
        confusion=cells,
        gates_passed=sum(bool(gate.get("passed")) for gate in card.gates),
        metadata={key: _plain_value(value) for key, value in card.metadata.items()},
        plots=draw_plots(card, y, p, cells),
        importance_shown=min(len(card.importance), TOP_FEATURES),
        operating_points=_operating_rows(card.operating_points),
    )


def _template() -> jinja2.Template:
    return page_template(_TEMPLATE)


@cache
def page_template(path: str) -> jinja2.Template:
    """A page template of the package (autoescaped, strict), with the number filters.

    ``number`` writes integers with thousands separators and other numbers to ``digits``
    places; ``percent`` writes a share as a percentage (``signed`` adds the sign); both
    write a dash for a missing or non-finite value.
    """
    environment = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["number"] = _format_number
    environment.filters["percent"] = _format_percent
    source = files("tabops").joinpath(path).read_text(encoding="utf-8")
    return environment.from_string(source)


def _format_number(value: object, digits: int = 3) -> str:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return f"{int(value):,}"
    number = finite_or_none(value)
    return _DASH if number is None else f"{number:.{digits}f}"


def _format_percent(value: object, digits: int = 1, signed: bool = False) -> str:
    number = finite_or_none(value)
    if number is None:
        return _DASH
    return f"{number:+.{digits}%}" if signed else f"{number:.{digits}%}"


def _format_time(text: str) -> str:
    try:
        return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    except ValueError:
        return text


def _plain_value(value: object) -> str:
    """A metadata value as text: mappings as ``key value`` pairs, missing values as a dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return _DASH
    if isinstance(value, dict):
        return ", ".join(f"{key} {_plain_value(item)}" for key, item in value.items()) or _DASH
    return str(value)


def _split_rows(profile: DataProfile) -> list[dict[str, Any]]:
    rows = []
    for split, count in profile.rows_by_split.items():
        positives = profile.positives_by_split.get(split)
        share = positives / count if positives is not None and count else None
        rows.append({"split": split, "rows": count, "positives": positives, "share": share})
    return rows


def _guard_row(guard: dict[str, Any]) -> dict[str, Any]:
    severity = str(guard.get("severity", "info"))
    return {
        "guard": guard.get("guard", ""),
        "severity": severity if severity in _SEVERITIES else "info",
        "column": guard.get("column") or "",
        "message": guard.get("message", ""),
    }


def _operating_rows(points: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per cut-off: its label and threshold, its validation and test outcomes."""
    validation = [OperatingPoint.model_validate(point) for point in points.get("validation", [])]
    test = [OperatingPoint.model_validate(point) for point in points.get("test", [])]
    return [
        {
            "label": point.label,
            "threshold": point.threshold,
            "validation": point,
            "test": test[index] if index < len(test) else None,
        }
        for index, point in enumerate(validation)
    ]


def _metric_rows(
    metrics: dict[str, float], intervals: dict[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    keys = [key for key in _METRICS if key in metrics] + [k for k in metrics if k not in _METRICS]
    return [
        {
            "label": _METRICS.get(key, key),
            "value": metrics[key],
            "interval": tuple(intervals[key]) if len(intervals.get(key, ())) == 2 else None,
            "lower_is_better": key in _LOWER_IS_BETTER,
        }
        for key in keys
    ]
