"""A model's monitoring on the terminal: the monitor the settings name, and its answer as tables.

Imported by the ``tabops monitor`` commands when they run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.markup import escape
from rich.table import Table

from tabops.cli.output import console, format_metric, open_registry, print_whole
from tabops.config import get_settings
from tabops.database import open_database
from tabops.monitoring.alert_store import AlertStore
from tabops.monitoring.summary import Monitor
from tabops.monitoring.watch import Watch

_STATUS_STYLES = {
    "ok": "green",
    "warn": "yellow",
    "alert": "bold red",
    "no_data": "dim",
    "few_rows": "dim",
}
_STATE_STYLES = {"ok": "green", "firing": "bold red"}
_PERFORMANCE = ("roc_auc", "pr_auc", "precision", "recall", "f1", "brier")


@contextmanager
def opened_watch() -> Iterator[Watch]:
    """The monitor, label store and alerts of the settings' home and metadata database."""
    settings = get_settings()
    engine = open_database(settings)
    try:
        yield Watch.from_settings(settings, open_registry(), engine)
    finally:
        engine.dispose()


@contextmanager
def opened_monitor() -> Iterator[tuple[Monitor, AlertStore]]:
    """The monitor and alert store of the settings' home and metadata database."""
    with opened_watch() as watch:
        yield watch.monitor, watch.alerts


def print_status(summary: dict[str, Any], alerts: list[dict[str, Any]]) -> None:
    """Every version's tables, then the model's alert states."""
    versions = summary.get("versions") or []
    console.print(
        f"[bold]{summary['model']}[/] over {summary['window']}: "
        f"{summary['since'][:19]} to {summary['until'][:19]} UTC"
    )
    if not versions:
        console.print("[dim]no predictions were logged in the window[/]")
    for document in versions:
        print_whole(_traffic_table(document))
        print_whole(_drift_table(document))
        print_whole(_performance_table(document))
    print_whole(_alerts_table(alerts))


def _traffic_table(document: dict[str, Any]) -> Table:
    traffic = document["traffic"]
    table = Table(
        "predictions",
        "positive rate",
        "mean probability",
        "latency p50 ms",
        "latency p95 ms",
        "labels",
        title=f"version {document['version']}: traffic",
    )
    table.add_row(
        str(traffic["rows"]),
        _percent(traffic.get("positive_rate")),
        format_metric(traffic.get("mean_probability")),
        format_metric(traffic.get("latency_ms_p50")),
        format_metric(traffic.get("latency_ms_p95")),
        str(document["performance"].get("rows") or 0),
    )
    return table


def _drift_table(document: dict[str, Any]) -> Table:
    drift = document["drift"]
    table = Table(
        "feature",
        "status",
        "PSI",
        "KS",
        "JS",
        "unseen",
        "null change",
        title=f"version {document['version']}: drift "
        f"(warn from {drift['psi_warn']:g}, alert from {drift['psi_alert']:g})",
    )
    features = sorted(drift["features"].items(), key=lambda item: -(item[1].get("psi") or 0.0))
    for name, feature in features:
        status = feature["status"]
        table.add_row(
            escape(name),
            f"[{_STATUS_STYLES.get(status, '')}]{status}[/]",
            format_metric(feature.get("psi")),
            format_metric(feature.get("ks")),
            format_metric(feature.get("jensen_shannon")),
            _percent(feature.get("unseen_share")),
            _percent(feature.get("null_rate_change")),
        )
    table.add_row("[italic]score[/]", "", format_metric(drift.get("score_psi")), *[""] * 4)
    return table


def _performance_table(document: dict[str, Any]) -> Table:
    realized = document["performance"]
    compared = realized.get("training") or {}
    estimates = document.get("estimates") or {}
    table = Table(
        "metric",
        f"realized ({realized.get('rows') or 0} labels)",
        "estimated",
        "training",
        "95% interval",
        title=f"version {document['version']}: performance against training",
    )
    for name in _PERFORMANCE:
        training = compared.get(name, {})
        interval = training.get("interval")
        value = format_metric(realized.get(name))
        if training.get("below_interval"):
            value = f"[bold red]{value} (worse)[/]"
        table.add_row(
            name,
            value,
            _estimated(estimates.get(f"estimated_{name}")),
            format_metric(training.get("training")),
            f"{interval[0]:.3f}-{interval[1]:.3f}" if interval else "-",
        )
    return table


def _alerts_table(alerts: list[dict[str, Any]]) -> Table:
    table = Table("version", "rule", "feature", "state", "value", "since", title="alert states")
    for alert in alerts:
        state = alert["state"]
        table.add_row(
            str(alert["version"]),
            escape(alert["rule"]),
            escape(alert.get("feature") or ""),
            f"[{_STATE_STYLES.get(state, '')}]{state}[/]",
            format_metric(alert.get("value")),
            str(alert.get("changed_at", ""))[:19],
        )
    if not alerts:
        table.add_row("-", "no alert rule checked yet", "", "", "", "")
    return table


def _estimated(value: object) -> str:
    return f"[italic]{value:.3f} (estimated)[/]" if isinstance(value, float) else "-"


def _percent(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, float) else "-"
