"""``tabops monitor``: watch registered models: labels, status, report, alerts, backtests.

One function per command; each imports what it needs when it runs.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tabops.cli.output import (
    EXIT_GATE_FAILED,
    PROJECT_FILE,
    console,
    fail,
    open_registry,
    reported_errors,
)

app = typer.Typer(help="Watch models: backtests, labels, drift, alerts.", no_args_is_help=True)

ProjectOption = Annotated[Path, typer.Option("--project", "-p", help="Project file or its folder.")]


class PeriodChoice(StrEnum):
    """The calendar periods a backtest splits rows into (UTC)."""

    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"


@app.command("backtest")
def backtest(
    project_path: ProjectOption = Path(PROJECT_FILE),
    by: Annotated[PeriodChoice, typer.Option(help="Period length.")] = PeriodChoice.MONTH,
    version: Annotated[
        str | None,
        typer.Option(
            metavar="REF", help="Score every period with NAME@alias or NAME:N instead of training."
        ),
    ] = None,
    train_periods: Annotated[
        int | None,
        typer.Option(min=1, help="Train on this many first periods (default 1), score the rest."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the result: .json or .csv.")
    ] = None,
) -> None:
    """Score the project's table period by period and check its gates on every period.

    Without --version, a model is trained on the first periods as `tabops train` trains it
    (nothing is registered). Exits 3 when a period fails a gate; a period holding a single
    class leaves the gates on AUC-like metrics undefined, not failed.
    """
    from tabops.cli.backtest_report import backtest_progress, print_backtest, write_backtest
    from tabops.monitoring.backtest import run_backtest
    from tabops.project import load_project

    if version is not None and train_periods is not None:
        fail("--train-periods trains a model; --version scores a registered one: pass one", 2)
    if output is not None and output.suffix.lower() not in (".json", ".csv"):
        fail(f"--output {output.name}: write a .json or a .csv file", 2)
    with reported_errors():
        project, folder = load_project(project_path)
        registry = open_registry() if version is not None else None
        what = f"scoring with {version}" if version else "training on the first periods"
        console.print(f"backtest of [bold]{project.name}[/] by {by}: {what}")
        with backtest_progress() as advance:
            result = run_backtest(
                project, folder, by.value, version, registry, train_periods or 1, advance
            )
        print_backtest(result)
        if output is not None:
            write_backtest(result, output)
            console.print(f"wrote {output}")
    failed = result.failed_periods
    if failed:
        names = ", ".join(period.period for period in failed)
        fail(
            f"{len(failed)} of {len(result.periods)} periods failed a gate: {names}",
            EXIT_GATE_FAILED,
        )


@app.command("labels")
def labels(
    file: Annotated[
        Path,
        typer.Argument(help="CSV or Parquet: prediction_id,label or entity_id,event_time,label."),
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="The model the labels judge.")],
) -> None:
    """Store late labels of logged predictions from a file; exits 1 when a row is invalid.

    A label by entity_id and event_time judges the model's latest logged prediction for
    that entity at or before the time. A prediction keeps its last label: a later row, or
    a later run, replaces an earlier one. Valid rows are stored even when others are not.
    """
    from rich.table import Table

    from tabops.config import get_settings
    from tabops.database import open_database
    from tabops.monitoring.labels import LabelStore
    from tabops.monitoring.segments import LogReader

    with reported_errors():
        settings = get_settings()
        engine = open_database(settings)
        try:
            store = LabelStore(engine, open_registry())
            log = LogReader(settings.home / "predictions")
            report = store.add_file(model, file, log, source=f"file:{file.name}")
        finally:
            engine.dispose()
    table = Table("accepted", "replaced", "unknown", "invalid", title=f"labels of {model}")
    table.add_row(
        *map(str, (report.accepted, report.replaced, report.unknown_count, report.invalid_count))
    )
    console.print(table)
    for unknown in report.unknown_ids:
        console.print(f"  [yellow]•[/] not in the log: {unknown}")
    for problem in report.problems:
        console.print(f"  [red]•[/] {problem.field}: {problem.problem}")
    if report.invalid_count:
        fail(f"{report.invalid_count} rows of {file.name} are invalid and were not stored")


WindowOption = Annotated[
    str,
    typer.Option(help="A time ('1h', '1d', '7d') or a count of the latest predictions ('5000')."),
]


@app.command("status")
def status(
    name: Annotated[str, typer.Argument(help="The model.")],
    window: WindowOption = "1d",
    version: Annotated[int | None, typer.Option(min=1, help="One version only.")] = None,
) -> None:
    """Traffic, drift per feature, performance against training and alert states of NAME.

    Estimates made without labels are marked estimated. Predictions show once the serving
    process has flushed its log (about a second).
    """
    from tabops.cli.monitor_status import opened_monitor, print_status
    from tabops.errors import TabopsError
    from tabops.monitoring.report import gather_status
    from tabops.monitoring.windows import Window

    try:
        parsed = Window.parse(window, "--window")
    except TabopsError as exc:
        fail(exc.message, 2)
    with reported_errors(), opened_monitor() as (monitor, alerts):
        summary, states = gather_status(monitor, alerts, name, parsed, version)
    print_status(summary, states)


@app.command("report")
def report(
    name: Annotated[str, typer.Argument(help="The model.")],
    since: Annotated[
        str, typer.Option(help="Start: a time back from now ('7d') or an ISO date.")
    ] = "7d",
    window: WindowOption = "1d",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The HTML file (default: NAME-monitoring.html)."),
    ] = None,
) -> None:
    """Write a self-contained HTML report on NAME since SINCE and print its path.

    The page shows drift and performance over time (one point per WINDOW), the scores
    against the reference, and the alert states; it is written in one atomic step.
    """
    from datetime import UTC, datetime

    from tabops.atomic import write_bytes
    from tabops.cli.monitor_status import opened_monitor
    from tabops.errors import TabopsError
    from tabops.monitoring.report import build_report
    from tabops.monitoring.windows import Window, parse_moment

    now = datetime.now(UTC)
    try:
        parsed, start = Window.parse(window, "--window"), parse_moment(since, "--since", now)
    except TabopsError as exc:
        fail(exc.message, 2)
    path = output if output is not None else Path(f"{name}-monitoring.html")
    with reported_errors(), opened_monitor() as (monitor, alerts):
        page = build_report(monitor, alerts, name, parsed, start, now)
        write_bytes(path, page.encode("utf-8"))
    console.print(str(path))


@app.command("check")
def check(
    name: Annotated[
        str | None, typer.Argument(help="The model (default: every registered model).")
    ] = None,
) -> None:
    """Check the alert rules now and print the alerts that fired or resolved.

    Each change is recorded and sent once (to TABOPS_MONITORING__WEBHOOK_URL when set),
    however many processes check; the job workers also check on their schedule.
    """
    from rich.table import Table

    from tabops.cli.monitor_status import opened_watch

    with reported_errors(), opened_watch() as watch:
        events = watch.checker.check(name) if name is not None else watch.check_all()
    if not events:
        console.print("no alert fired or resolved")
        return
    table = Table("event", "model", "version", "rule", "feature", "value", title="alerts")
    for event in events:
        value = "-" if event.value is None else f"{event.value:.4g}"
        style = "bold red" if event.event == "firing" else "green"
        table.add_row(
            f"[{style}]{event.event}[/]",
            event.model,
            str(event.version),
            event.rule,
            event.feature or "",
            value,
        )
    console.print(table)
