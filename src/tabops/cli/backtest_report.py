"""Showing a backtest: its progress bar, its table of periods, and its JSON or CSV file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tabops.cli.output import console, format_metric, print_whole

if TYPE_CHECKING:
    from tabops.monitoring.backtest import BacktestProgress, BacktestResult, PeriodResult

# Shown in the table whatever the gates; a gate's metric is added when not among them.
_SHOWN_METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "brier")
_GATE_MARKS = {
    "passed": "[green]✓[/]",
    "failed": "[bold red]✗[/]",
    "undefined": "[dim]undefined[/]",
}


@contextmanager
def backtest_progress() -> Iterator[BacktestProgress]:
    """A transient progress bar and the callback that advances it."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:g}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("reading the table", total=None)

        def advance(step: str, done: float, total: int) -> None:
            progress.update(task, advance=done, total=total, description=step)

        yield advance


def print_backtest(result: BacktestResult) -> None:
    """The scored periods as a table, with what the model was trained on or loaded from."""
    if result.version is not None:
        console.print(f"scored with {result.version} (threshold {result.threshold:.4f})")
    else:
        trained = ", ".join(result.training_periods)
        console.print(
            f"trained on {trained} ({result.training_rows} rows, not registered; "
            f"threshold {result.threshold:.4f})"
        )
    skipped = {"without a readable time": result.undated_rows}
    skipped["without a target value"] = result.unlabelled_rows
    for why, rows in skipped.items():
        if rows:
            console.print(f"note: {rows} rows {why} belong to no period")
    metrics = _shown_metrics(result)
    table = Table(title=f"{result.model} by {result.by}: {len(result.periods)} periods scored")
    for heading in ("period", "rows", "positives", *metrics, *result.gates):
        table.add_column(heading)
    for period in result.periods:
        label = f"{period.period} (in training)" if period.in_training else period.period
        table.add_row(
            label,
            str(period.rows),
            str(period.positives),
            *(format_metric(period.metrics.get(name)) for name in metrics),
            *(_GATE_MARKS[gate.status] for gate in period.gates),
        )
    print_whole(table)
    if not result.gates:
        console.print("the project has no gates: nothing was checked")


def write_backtest(result: BacktestResult, path: Path) -> None:
    """The whole result as JSON, or one CSV row per scored period (written atomically)."""
    from tabops.atomic import write_bytes

    if path.suffix.lower() == ".json":
        write_bytes(path, result.model_dump_json(indent=2).encode() + b"\n")
        return
    rows = [_flat_row(period) for period in result.periods]
    buffer = io.StringIO()
    heading = list(rows[0]) if rows else ["period"]
    writer = csv.DictWriter(buffer, fieldnames=heading, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(path, buffer.getvalue().encode())


def _shown_metrics(result: BacktestResult) -> list[str]:
    gated = [gate.metric for gate in result.periods[0].gates] if result.periods else []
    return [*_SHOWN_METRICS, *(name for name in dict.fromkeys(gated) if name not in _SHOWN_METRICS)]


def _flat_row(period: PeriodResult) -> dict[str, object]:
    """One CSV row: the period, its counts and status, every metric, each gate's result."""
    row: dict[str, object] = {
        "period": period.period,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "rows": period.rows,
        "positives": period.positives,
        "in_training": period.in_training,
        "status": period.status,
    }
    row.update({name: "" if value is None else value for name, value in period.metrics.items()})
    row.update({gate.gate: gate.status for gate in period.gates})
    return row
