"""The monitoring page: drift over time, scores against the reference, performance, traffic, alerts.

It draws what ``GET /v1/models/{name}/monitoring`` answers, read from the same ``Watch``
(the monitor over the prediction log, the label store, the alert store), as a series over
the chosen window. A series is one pass over the log, seconds long over millions of
predictions, so the page never makes it: it shows the latest summary the background
thread of ``LatestSummaries`` computed (refreshed every minute while the page is looked
at) with the moment it describes, or says it is being computed and reloads itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from tabops.errors import ModelNotFoundError, Problem
from tabops.monitoring.alert_store import Delivery, alert_document
from tabops.monitoring.latest import LatestSummaries
from tabops.monitoring.summary import Monitor
from tabops.monitoring.windows import Window
from tabops.security.keys import READ
from tabops.server.deps import get_core, get_watch
from tabops.server.ui.charts import Line, draw_bars, draw_heat_map, draw_lines, draw_step_lines
from tabops.server.ui.render import UiUserDep, render

router = APIRouter()

WindowChoice = Literal["1d", "7d", "30d"]
STEPS: dict[str, str] = {"1d": "1h", "7d": "6h", "30d": "1d"}
"""Each window offered, and the length of one point of its series."""
PERFORMANCE_SHOWN = ("roc_auc", "precision", "recall")
HISTORY_SHOWN = 50
"""The alert events listed, newest first."""
FIRST_WAIT_SECONDS = 0.03
"""How long a page waits for a summary never computed before: a small log's is ready."""
RELOAD_SECONDS = 3
_DELIVERY_BADGES = {"delivered": "ok", "pending": "warn", "failed": "alert", "logged": "info"}


def page_summary(monitor: Monitor, model: str, window: str, until: datetime) -> dict[str, Any]:
    """The series the page draws: ``window`` ending at ``until``, one point per its step.

    The API answers the same with ``window=<step>&since=<since>&until=<until>``.
    """
    length = Window.parse(window).length
    assert length is not None  # every window offered is a duration
    return monitor.summary(model, Window.parse(STEPS[window]), until - length, until)


def get_summaries(request: Request) -> LatestSummaries:
    """The app's latest page summaries (set up with the UI)."""
    summaries: LatestSummaries = request.app.state.ui_summaries
    return summaries


@router.get("/models/{name}/monitoring", response_class=HTMLResponse)
async def show_monitoring(
    name: str,
    request: Request,
    user: UiUserDep,
    window: Annotated[WindowChoice, Query(description="How far back: 1d, 7d or 30d.")] = "1d",
    version: Annotated[int | None, Query(ge=1, description="The version shown.")] = None,
) -> HTMLResponse:
    """A model's monitoring over the window: one version's charts, alert states and history."""
    get_core(request).authorize(user.context, name, READ)
    watch = get_watch(request)
    if not await run_in_threadpool(watch.registry.list_versions, name):
        raise ModelNotFoundError(f"model {name!r} not found", [Problem("name", "not registered")])
    latest = await run_in_threadpool(get_summaries(request).wait, name, window, FIRST_WAIT_SECONDS)
    states = await run_in_threadpool(watch.alerts.states, name)
    history = await run_in_threadpool(watch.alerts.deliveries, name, HISTORY_SHOWN)
    values: dict[str, Any] = {
        "model": name,
        "nav_model": name,
        "window": window,
        "windows": list(STEPS),
        "step": STEPS[window],
        "failure": latest.failure,
        "alerts": [alert_document(state) for state in states],
        "history": [_history_row(delivery) for delivery in history],
        "delivery_badges": _DELIVERY_BADGES,
    }
    summary = latest.summary
    if summary is None:
        values.update(is_computing=True, reload_seconds=RELOAD_SECONDS, versions=[], view=None)
        return render(request, "monitoring.html.j2", values, user=user)
    documents = summary["versions"]
    numbers = [int(document["version"]) for document in documents]
    shown = version if version in numbers else _default_version(watch.monitor, name, numbers)
    document = next((d for d in documents if d["version"] == shown), None)
    values.update(
        is_computing=False,
        versions=numbers,
        version=shown,
        since=_moment(summary["since"]),
        until=_moment(summary["until"]),
        since_iso=summary["since"],
        until_iso=summary["until"],
        view=_version_view(document, window) if document is not None else None,
    )
    return render(request, "monitoring.html.j2", values, user=user)


def _history_row(delivery: Delivery) -> dict[str, Any]:
    """One alert event and how its announcement went."""
    payload = delivery.payload
    return {
        "at": delivery.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "at_iso": delivery.created_at.isoformat(),
        "event": delivery.event,
        "rule": payload.get("rule"),
        "feature": payload.get("feature"),
        "version": payload.get("version"),
        "value": _metric(payload.get("value")),
        "status": delivery.status,
        "attempts": delivery.attempts,
        "delivered_at": delivery.delivered_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        if delivery.delivered_at is not None
        else None,
        "error": delivery.last_error,
    }


def _default_version(monitor: Monitor, name: str, numbers: list[int]) -> int | None:
    if not numbers:
        return None
    served = monitor.served_version(name)
    return served if served in numbers else numbers[0]


def _moment(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _label(text: str, window: str) -> str:
    moment = datetime.fromisoformat(text).astimezone(UTC)
    return moment.strftime("%b %d" if window == "30d" else "%b %d %H:%M")


def _version_view(document: dict[str, Any], window: str) -> dict[str, Any]:
    """What the template shows of one version: charts, the drift table, the totals."""
    drift = document["drift"]
    warn, alert = float(drift["psi_warn"]), float(drift["psi_alert"])
    series: list[dict[str, Any]] = document.get("series") or []
    columns = [_label(point["since"], window) for point in series]
    features = sorted(
        drift["features"],
        key=lambda name: -max((_psi(p["psi"].get(name)) for p in series), default=0.0),
    )
    cells = [[point["psi"].get(feature) for point in series] for feature in features]
    histogram = drift.get("score_histogram")
    traffic = document["traffic"]
    performance_lines = _performance_lines(series)
    return {
        "threshold": document["threshold"],
        "traffic": traffic,
        "psi_warn": warn,
        "psi_alert": alert,
        "score_psi": drift.get("score_psi"),
        "features": features,
        "columns": columns,
        "cells": cells,
        "totals": {name: drift["features"][name] for name in features},
        "heat_map": draw_heat_map(
            features, columns, cells, warn, alert, label="PSI per feature and time bucket"
        )
        if features and columns
        else None,
        "histogram": draw_step_lines(
            histogram["edges"],
            [
                Line("reference (training)", histogram["reference"], "reference"),
                Line(f"now ({traffic['rows']:,} predictions)", histogram["current"], "current"),
            ],
            label="Score distribution now against the reference",
        )
        if histogram and traffic["rows"]
        else None,
        "performance": draw_lines(
            columns, performance_lines, label="Performance over time, realized and estimated"
        )
        if any(v is not None for line in performance_lines for v in line.values)
        else None,
        "performance_lines": performance_lines,
        "realized": document["performance"],
        "estimates": document["estimates"],
        "traffic_chart": draw_bars(
            columns, [int(point["rows"]) for point in series], label="Predictions per time bucket"
        )
        if columns
        else None,
    }


def _psi(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _performance_lines(series: list[dict[str, Any]]) -> list[Line]:
    lines = []
    for metric in PERFORMANCE_SHOWN:
        realized = [_metric(point["performance"].get(metric)) for point in series]
        estimated = [_metric(point["estimates"].get(f"estimated_{metric}")) for point in series]
        lines.append(Line(f"{metric} (realized, from labels)", realized, f"m-{metric}"))
        lines.append(
            Line(f"{metric} (estimate)", estimated, f"m-{metric} estimate", is_dashed=True)
        )
    return lines


def _metric(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


__all__ = ["STEPS", "get_summaries", "page_summary", "router", "show_monitoring"]
