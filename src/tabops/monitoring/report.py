"""The monitoring report: one self-contained HTML page per model, plots inline, no links out.

``render_report`` turns the monitoring answer (``Monitor.summary`` with a series) and the
alert states into the page; ``build_report`` gathers both for a model over a span.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tabops.errors import InvalidRequestError, ModelNotFoundError, Problem
from tabops.monitoring.alert_store import AlertStore, alert_document
from tabops.monitoring.performance import LOWER_IS_BETTER
from tabops.monitoring.report_plots import (
    PERFORMANCE_SHOWN,
    draw_drift_over_time,
    draw_performance_over_time,
    draw_score_distribution,
)
from tabops.monitoring.summary import Monitor
from tabops.monitoring.windows import Window
from tabops.training.card import page_template
from tabops.training.card_plots import finite_or_none

_TEMPLATE = "templates/monitoring.html.j2"
_METRICS = {
    **PERFORMANCE_SHOWN,
    "pr_auc": "PR AUC",
    "accuracy": "Accuracy",
    "brier": "Brier score",
    "calibration_error": "Calibration error",
}
_STATUS_ORDER = {"alert": 0, "warn": 1, "ok": 2, "few_rows": 3, "no_data": 4}
_DASH = "\N{EN DASH}"  # shown for a missing or undefined number


def build_report(
    monitor: Monitor,
    alerts: AlertStore,
    model: str,
    window: Window,
    since: datetime,
    until: datetime,
) -> str:
    """The report of ``model`` over ``[since, until)``, one point of the series per ``window``.

    Raises:
        ModelNotFoundError: no model of that name.
        InvalidRequestError: ``since`` is not before ``until``, or the series is too long.
    """
    _check_model(monitor, model)
    if since >= until:
        raise InvalidRequestError(
            "since must be before until", [Problem("since", "not before until")]
        )
    summary = monitor.summary(model, window, since, until)
    states = [alert_document(state) for state in alerts.states(model)]
    return render_report(summary, states, until)


def gather_status(
    monitor: Monitor,
    alerts: AlertStore,
    model: str,
    window: Window,
    version: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The monitoring answer of ``model`` over the window ending now, and its alert states.

    Raises:
        ModelNotFoundError: no model of that name.
        VersionNotFoundError: ``version`` is not one of the model's.
    """
    _check_model(monitor, model, version)
    summary = monitor.summary(model, window, versions=None if version is None else [version])
    return summary, [alert_document(state) for state in alerts.states(model)]


def render_report(
    summary: dict[str, Any], alerts: list[dict[str, Any]] | None, generated_at: datetime
) -> str:
    """One self-contained HTML document (inline CSS and images, no scripts, no links out).

    Args:
        summary: The monitoring answer of one model, each version with a ``series`` if any.
        alerts: Alert states as the API gives them; None leaves the alerts section out.
        generated_at: When the report was made, shown in its header.
    """
    return page_template(_TEMPLATE).render(
        model=summary.get("model", ""),
        window=summary.get("window", ""),
        since=_format_time(summary.get("since")),
        until=_format_time(summary.get("until")),
        generated=generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        versions=[_version_view(document) for document in summary.get("versions", [])],
        alerts=None if alerts is None else [_alert_row(alert) for alert in alerts],
    )


def _check_model(monitor: Monitor, model: str, version: int | None = None) -> None:
    if version is not None:
        monitor.registry.resolve(model, version)
    elif not monitor.registry.list_versions(model):
        problem = Problem("model", "no model of that name is registered")
        raise ModelNotFoundError(f"model {model!r} not found", [problem])


def _version_view(document: dict[str, Any]) -> dict[str, Any]:
    drift = document.get("drift") or {}
    performance = document.get("performance") or {}
    compared = performance.get("training") or {}
    estimates = document.get("estimates") or {}
    series = document.get("series") or []
    traffic = document.get("traffic") or {}
    warn, alert = drift.get("psi_warn", 0.1), drift.get("psi_alert", 0.2)
    rows = int(traffic.get("rows") or 0)
    return {
        "version": document.get("version"),
        "threshold": document.get("threshold"),
        "traffic": traffic,
        "labels": int(performance.get("rows") or 0),
        "training": [
            {"label": _METRICS.get(name, name), **value}
            for name, value in compared.items()
            if name in _METRICS
        ],
        "features": _feature_rows(drift.get("features") or {}),
        "drifted": drift.get("drifted") or [],
        "psi_warn": warn,
        "psi_alert": alert,
        "score_psi": drift.get("score_psi"),
        "performance": _performance_rows(performance, compared, estimates),
        "series_points": len(series),
        "plots": {
            "drift": draw_drift_over_time(series, warn, alert),
            "score": draw_score_distribution(drift.get("score_histogram"), rows),
            "performance": draw_performance_over_time(series, compared),
        },
    }


def _feature_rows(features: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per feature, the most drifted first."""
    rows = [{**drift, "name": name} for name, drift in features.items()]
    return sorted(
        rows,
        key=lambda row: (
            _STATUS_ORDER.get(row.get("status", "no_data"), 4),
            -(finite_or_none(row.get("psi")) or 0.0),
            row["name"],
        ),
    )


def _performance_rows(
    realized: dict[str, Any], compared: dict[str, dict[str, Any]], estimates: dict[str, Any]
) -> list[dict[str, Any]]:
    return [
        {
            "label": label,
            "realized": realized.get(name),
            "estimated": estimates.get(f"estimated_{name}"),
            "training": compared.get(name, {}).get("training"),
            "interval": compared.get(name, {}).get("interval"),
            "worse": compared.get(name, {}).get("below_interval"),
            "lower_is_better": name in LOWER_IS_BETTER,
        }
        for name, label in _METRICS.items()
        if name in realized or f"estimated_{name}" in estimates
    ]


def _alert_row(alert: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": alert.get("model", ""),
        "version": alert.get("version"),
        "rule": alert.get("rule", ""),
        "feature": alert.get("feature") or "",
        "state": alert.get("state", ""),
        "value": alert.get("value"),
        "since": _format_time(alert.get("changed_at")),
    }


def _format_time(text: object) -> str:
    if not isinstance(text, str):
        return _DASH
    try:
        return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return text
