"""The plots of the monitoring report: drift and performance over time, scores against reference.

Each takes the JSON-ready monitoring answer (``Monitor.summary``) and returns a ``Plot``: an
inline PNG, or the note saying why there is nothing to draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from tabops.training.card_plots import Plot, drawn, finite_or_none, plain_text

TOP_DRIFTED = 6
"""Features drawn in the drift plot: those with the largest PSI at any point."""
PERFORMANCE_SHOWN = {"roc_auc": "ROC AUC", "precision": "Precision", "recall": "Recall", "f1": "F1"}
_REALIZED, _ESTIMATED, _TRAINING = "#1f5fa8", "#8250df", "#1a7f37"


def draw_drift_over_time(
    series: Sequence[dict[str, Any]], psi_warn: float, psi_alert: float
) -> Plot:
    """PSI of the most drifted features (and of the score) at each point of the series."""
    title = "Drift per feature over time (PSI)"
    ranked = _most_drifted(series)
    if not ranked:
        return Plot(title, note="No point of the series has predictions to compare.")
    times = _midpoints(series)
    figure, axes = _axes(7.2, 3.8)
    for name in ranked:
        values = [_value(point.get("psi", {}).get(name)) for point in series]
        axes.plot(times, values, "o-", lw=1.6, ms=3.5, label=plain_text(name, 28))
    score = [_value(point.get("score_psi")) for point in series]
    if not np.isnan(score).all():
        axes.plot(times, score, "s:", color="#59636e", lw=1.4, ms=3, label="score (probability)")
    axes.axhline(psi_warn, color="#9a6700", ls="--", lw=1, label=f"warn {psi_warn:g}")
    axes.axhline(psi_alert, color="#cf222e", ls="--", lw=1, label=f"alert {psi_alert:g}")
    axes.set(ylabel="PSI against the reference")
    axes.set_ylim(bottom=0)
    _time_axis(axes, series)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return drawn(title, figure)


def draw_score_distribution(histogram: dict[str, list[float]] | None, rows: int) -> Plot:
    """Shares of the positive-class probability now against the reference, on equal bins."""
    title = "Score distribution: now against the reference"
    if not histogram or rows == 0 or not any(histogram.get("current", ())):
        return Plot(title, note="No predictions in the window: no score distribution to compare.")
    edges = np.asarray(histogram["edges"], dtype=float)
    figure, axes = _axes()
    axes.stairs(
        histogram["reference"], edges, fill=True, color="#d1d9e0", label="reference (training)"
    )
    axes.stairs(histogram["current"], edges, lw=2, color=_REALIZED, label=f"now ({rows:,} rows)")
    axes.set(xlabel="Positive-class probability", ylabel="Share of predictions", xlim=(0, 1))
    axes.legend(loc="upper right")
    return drawn(title, figure)


def draw_performance_over_time(
    series: Sequence[dict[str, Any]], training: dict[str, dict[str, Any]]
) -> Plot:
    """Realized and estimated metrics at each point, beside the training test value and interval.

    Args:
        series: The points of the series, each with ``performance`` and ``estimates``.
        training: Per metric, ``training`` (the test value) and ``interval`` (95%), if known.
    """
    title = "Performance over time"
    if not any(point.get("rows") for point in series):
        return Plot(title, note="No predictions in the series: nothing to measure or estimate.")
    times = _midpoints(series)
    figure = Figure(figsize=(7.2, 5.0), layout="constrained")
    grid = figure.subplots(2, 2, sharex=True)
    for axes, (metric, label) in zip(grid.ravel(), PERFORMANCE_SHOWN.items(), strict=True):
        _performance_axes(axes, times, series, metric, training.get(metric, {}))
        axes.set_title(label, fontsize=10)
        _time_axis(axes, series)
    handles, labels = grid[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return drawn(title, figure)


def _performance_axes(
    axes: Axes,
    times: np.ndarray,
    series: Sequence[dict[str, Any]],
    metric: str,
    training: dict[str, Any],
) -> None:
    axes.grid(alpha=0.3)
    interval = training.get("interval")
    if interval:
        axes.axhspan(*interval, color=_TRAINING, alpha=0.12, lw=0, label="training 95% interval")
    value = finite_or_none(training.get("training"))
    if value is not None:
        axes.axhline(value, color=_TRAINING, lw=1.2, label="training test value")
    realized = [_value(point.get("performance", {}).get(metric)) for point in series]
    estimated = [_value(point.get("estimates", {}).get(f"estimated_{metric}")) for point in series]
    axes.plot(times, realized, "o-", color=_REALIZED, lw=1.8, ms=4, label="realized (labels)")
    axes.plot(
        times, estimated, "o--", color=_ESTIMATED, lw=1.4, ms=3, label="estimated (no labels)"
    )
    axes.set_ylim(-0.02, 1.02)


def _most_drifted(series: Sequence[dict[str, Any]]) -> list[str]:
    """Up to ``TOP_DRIFTED`` features with a PSI somewhere, largest maximum first."""
    largest: dict[str, float] = {}
    for point in series:
        for name, psi in (point.get("psi") or {}).items():
            number = finite_or_none(psi)
            if number is not None:
                largest[name] = max(number, largest.get(name, number))
    return sorted(largest, key=lambda name: (-largest[name], name))[:TOP_DRIFTED]


def _midpoints(series: Sequence[dict[str, Any]]) -> np.ndarray:
    """The middle of each point, in UTC (drawn without a zone: the axis reads UTC)."""
    since, until = _times(series, "since"), _times(series, "until")
    middles: np.ndarray = since + (until - since) // 2
    return middles


def _times(series: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    moments = [datetime.fromisoformat(point[key]).astimezone(UTC) for point in series]
    return np.array([moment.replace(tzinfo=None) for moment in moments], dtype="datetime64[us]")


def _value(value: object) -> float:
    number = finite_or_none(value)
    return np.nan if number is None else number


def _axes(width: float = 4.8, height: float = 3.6) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.add_subplot()
    axes.grid(alpha=0.3)
    return figure, axes


def _time_axis(axes: Axes, series: Sequence[dict[str, Any]]) -> None:
    """Dates on the x axis across the whole series, even where points hold no data."""
    axes.set_xlim(_times(series[:1], "since")[0], _times(series[-1:], "until")[0])
    locator = AutoDateLocator(maxticks=6)  # type: ignore[no-untyped-call]  # untyped in matplotlib
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(
        ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]  # untyped in matplotlib
    )
