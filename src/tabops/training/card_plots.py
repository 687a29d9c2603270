"""The plots of the model card, drawn with matplotlib into inline PNGs."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

if TYPE_CHECKING:
    from tabops.training.card import ModelCard

TOP_FEATURES = 20
_FEATURE_LABEL_CHARS = 40
# Plots show at 100 CSS pixels an inch, so every plot has the same type size; drawing them at
# 150 dpi keeps them sharp on high-density screens and on paper.
_DPI = 150
_CSS_PIXELS_PER_INCH = 100


@dataclass(frozen=True)
class Plot:
    """A plot as a PNG data URI, or the note saying why it was left out."""

    title: str
    image: str | None = None
    note: str | None = None
    width: int = 480


def draw_plots(
    card: ModelCard, y: np.ndarray, p: np.ndarray, cells: dict[str, int]
) -> dict[str, Plot]:
    """Every plot of the card by key, each either drawn or replaced by a note saying why not."""
    plots = {"confusion": drawn("Confusion matrix", _confusion_figure(card, cells))}
    if card.importance:
        plots["importance"] = drawn("Permutation importance", _importance_figure(card))
    else:
        plots["importance"] = Plot("Permutation importance", note="No importance was recorded.")
    titles = {"roc": "ROC curve", "pr": "Precision-recall curve", "calibration": "Calibration"}
    if not (len(y) == len(p) > 0 and np.isfinite(p).all()):
        note = "No usable held-out probabilities were recorded."
        return plots | {key: Plot(title, note=note) for key, title in titles.items()}
    plots["calibration"] = drawn(titles["calibration"], _calibration_figure(y, p))
    if len(np.unique(y)) < 2:
        # Both curves need positives and negatives; sklearn would warn and return NaN.
        note = "The test set holds one class only, so this curve is undefined."
        return plots | {key: Plot(titles[key], note=note) for key in ("roc", "pr")}
    plots["roc"] = drawn(titles["roc"], _roc_figure(y, p, cells))
    plots["pr"] = drawn(titles["pr"], _pr_figure(y, p, cells))
    return plots


def drawn(title: str, figure: Figure) -> Plot:
    """A figure as an inline PNG; the figure is cleared afterwards."""
    # Figure without pyplot: no GUI backend, no global figure registry, safe in threads.
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=_DPI)
        width = round(figure.get_figwidth() * _CSS_PIXELS_PER_INCH)
    finally:
        figure.clear()
    image = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return Plot(title, image=image, width=width)


def plain_text(text: object, limit: int = _FEATURE_LABEL_CHARS) -> str:
    """Text for matplotlib: cut to length, with ``$`` escaped so it is never read as mathtext."""
    value = str(text)
    value = value if len(value) <= limit else value[: limit - 1] + "…"
    return value.replace("$", r"\$")


def _axes(width: float = 4.8, height: float = 3.6) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.add_subplot()
    axes.grid(alpha=0.3)
    return figure, axes


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _roc_figure(y: np.ndarray, p: np.ndarray, cells: dict[str, int]) -> Figure:
    figure, axes = _axes()
    fpr, tpr, _ = roc_curve(y, p)
    axes.plot(fpr, tpr, lw=2, label=f"model (AUC {roc_auc_score(y, p):.3f})")
    axes.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    tpr_at, fpr_at = (
        _ratio(cells["tp"], cells["tp"] + cells["fn"]),
        _ratio(cells["fp"], cells["fp"] + cells["tn"]),
    )
    if tpr_at is not None and fpr_at is not None:
        axes.plot([fpr_at], [tpr_at], "o", color="crimson", label="at the threshold")
    axes.set(xlabel="False positive rate", ylabel="True positive rate", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower right")
    return figure


def _pr_figure(y: np.ndarray, p: np.ndarray, cells: dict[str, int]) -> Figure:
    figure, axes = _axes()
    precision, recall, _ = precision_recall_curve(y, p)
    axes.step(
        recall,
        precision,
        where="post",
        lw=2,
        label=f"model (AP {average_precision_score(y, p):.3f})",
    )
    base = float(y.mean())
    axes.axhline(base, ls="--", color="grey", lw=1, label=f"positive rate {base:.3f}")
    recall_at, precision_at = (
        _ratio(cells["tp"], cells["tp"] + cells["fn"]),
        _ratio(cells["tp"], cells["tp"] + cells["fp"]),
    )
    if recall_at is not None and precision_at is not None:
        axes.plot([recall_at], [precision_at], "o", color="crimson", label="at the threshold")
    axes.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower left")
    return figure


def _calibration_figure(y: np.ndarray, p: np.ndarray) -> Figure:
    figure, axes = _axes()
    # Quantile bins hold equal numbers of rows; about 10 rows a bin keeps each point meaningful.
    bins = min(10, max(2, len(y) // 10))
    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="quantile")
    axes.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
    axes.plot(predicted, observed, "o-", lw=2, label=f"model ({len(predicted)} quantile bins)")
    axes.set(
        xlabel="Mean predicted probability",
        ylabel="Observed positive share",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    axes.legend(loc="upper left")
    return figure


def _confusion_figure(card: ModelCard, cells: dict[str, int]) -> Figure:
    figure, axes = _axes(4.2, 3.6)
    axes.grid(False)
    matrix = np.array([[cells["tn"], cells["fp"]], [cells["fn"], cells["tp"]]])
    total = int(matrix.sum())
    axes.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, int(matrix.max())))
    labels = [plain_text(card.negative_class, 20), plain_text(card.positive_class, 20)]
    axes.set_xticks([0, 1], labels=labels)
    axes.set_yticks([0, 1], labels=labels)
    axes.set(xlabel="Predicted", ylabel="Actual")
    for (row, column), count in np.ndenumerate(matrix):
        share = f"\n{count / total:.1%}" if total else ""
        colour = "white" if count > matrix.max() / 2 else "black"
        axes.text(column, row, f"{count}{share}", ha="center", va="center", color=colour)
    return figure


def _importance_figure(card: ModelCard) -> Figure:
    ranked = sorted(card.importance, key=lambda item: _finite(item[1]), reverse=True)
    top = ranked[:TOP_FEATURES][::-1]  # barh draws upwards: the largest goes last, on top
    figure, axes = _axes(6.4, 1.0 + 0.24 * len(top))
    axes.barh(
        range(len(top)),
        [_finite(mean) for _, mean, _ in top],
        xerr=[_finite(std) for _, _, std in top],
        color="#4a78b5",
        ecolor="#333333",
        capsize=3,
    )
    axes.set_yticks(range(len(top)), labels=[plain_text(name) for name, _, _ in top])
    axes.axvline(0, color="grey", lw=1)
    axes.set_xlabel("Mean drop in PR AUC when the feature is shuffled")
    return figure


def _finite(value: float) -> float:
    number = finite_or_none(value)
    return 0.0 if number is None else number


def finite_or_none(value: object) -> float | None:
    """A finite number as a float; None for NaN, infinity, booleans and anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
