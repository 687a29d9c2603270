"""Printing what training found: guards, leaderboard, calibration, threshold, metrics, gates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from tabops.cli.output import console, format_metric

if TYPE_CHECKING:
    from tabops.training.train import TrainingResult

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}
_POINT_HEADINGS = ("cut-off", "threshold", "validation caught / flagged", "P / R", "test", "P / R")


def print_training_report(result: TrainingResult) -> None:
    """The training outcome, as tables and short lines."""
    console.print(f"split: {result.split.description}")
    for note in result.notes:
        if note not in result.threshold_warnings:
            console.print(f"note: {note}")
    for finding in result.guards:
        style = _SEVERITY_STYLE[finding.severity]
        console.print(f"[{style}]{finding.severity}[/]: {finding.message}")
    leaderboard = Table(title="candidates (cross-validated on training rows)")
    for heading in ("candidate", "PR AUC", "ROC AUC", "settings", "best setting"):
        leaderboard.add_column(heading)
    for score in result.leaderboard:
        leaderboard.add_row(
            score.name,
            f"{score.pr_auc_mean:.3f} ± {score.pr_auc_std:.3f}",
            f"{score.roc_auc_mean:.3f} ± {score.roc_auc_std:.3f}",
            f"{score.settings_tried} of {score.settings_planned}",
            ", ".join(f"{k}={v}" for k, v in score.params.items()) or "defaults",
        )
    console.print(leaderboard)
    calibration = result.calibration
    if calibration["kept"]:
        console.print(
            f"calibration: {calibration['method']} kept (validation Brier "
            f"{calibration['brier_before']:.4f} -> {calibration['brier_after']:.4f})"
        )
    else:
        console.print("calibration: none kept (it did not lower the validation Brier score)")
    console.print(f"threshold {result.threshold.threshold:.4f}: {result.threshold.reason}")
    # Printed beside the threshold, not with the other notes, so that it cannot be missed.
    for warning in result.threshold_warnings:
        console.print(f"[bold red]warning: {escape(warning)}[/]")
    _print_operating_points(result)
    metrics = Table(title=f"held-out test rows: {result.rows['test']}")
    for heading in ("metric", "value", "95% interval"):
        metrics.add_column(heading)
    for name, value in result.test.metrics.items():
        low_high = result.test.intervals.get(name)
        interval = f"{low_high[0]:.3f} to {low_high[1]:.3f}" if low_high else "-"
        metrics.add_row(name, format_metric(value), interval)
    console.print(metrics)
    confusion = result.test.confusion
    console.print(
        f"confusion at the threshold: tn {confusion['tn']}, fp {confusion['fp']}, "
        f"fn {confusion['fn']}, tp {confusion['tp']}"
    )
    for gate in result.gates:
        mark = "[green]gate passed[/]" if gate.passed else "[bold red]gate failed[/]"
        console.print(f"{mark}: {gate.gate} (got {gate.observed:.4f})")
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.stage_seconds.items())
    console.print(f"time: {result.training_seconds:.1f} s ({stages})")


def _print_operating_points(result: TrainingResult) -> None:
    """Other cut-offs chosen on the validation rows, and how they do on the test rows."""
    if not result.operating_points:
        return
    table = Table(title="operating points (chosen on validation rows)")
    for heading in _POINT_HEADINGS:
        table.add_column(heading)
    tests = result.test_operating_points
    for index, point in enumerate(result.operating_points):
        cells = [point.label, f"{point.threshold:.4f}"]
        for outcome in (point, tests[index] if index < len(tests) else None):
            if outcome is None:
                cells += ["-", "-"]
            else:
                cells += [
                    f"{outcome.true_positives} / {outcome.flagged}",
                    f"{outcome.precision:.3f} / {outcome.recall:.3f}",
                ]
        table.add_row(*cells)
    console.print(table)
