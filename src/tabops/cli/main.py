"""The ``tabops`` command: init, validate, train, serve, predict and the models group.

Commands import what they need when they run (see ``tabops.cli.output``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tabops.cli import features, jobs, keys, models, monitor, serving, store
from tabops.cli.output import (
    PROJECT_FILE,
    console,
    error_console,
    fail,
    open_registry,
    print_whole,
    reported_errors,
)
from tabops.registry.versions import DEFAULT_ALIAS, check_alias, parse_model_ref

if TYPE_CHECKING:
    pass

app = typer.Typer(
    name="tabops",
    help="Train, register, serve and monitor tabular binary classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")
app.add_typer(jobs.app, name="jobs")
app.add_typer(features.app, name="features")
app.add_typer(keys.app, name="keys")
app.add_typer(monitor.app, name="monitor")
app.add_typer(store.app, name="store")
app.command()(jobs.worker)
app.command()(serving.serve)
app.command("audit")(keys.show_audit)

ProjectOption = Annotated[Path, typer.Option("--project", "-p", help="Project file or its folder.")]


@app.command()
def init(
    data: Annotated[Path, typer.Argument(help="CSV, Parquet or SQLite table with a target.")],
    target: Annotated[str, typer.Option(help="Name of the binary target column.")],
    name: Annotated[str | None, typer.Option(help="Model name (default: from the file).")] = None,
    positive: Annotated[
        str | None, typer.Option(help="Target value of the positive class.")
    ] = None,
    class_names: Annotated[
        str | None, typer.Option(help="'negative,positive' names, e.g. 'survived,dead'.")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write.")] = Path(
        PROJECT_FILE
    ),
    entity: Annotated[str | None, typer.Option(help="Column naming each row's entity.")] = None,
    timestamp: Annotated[str | None, typer.Option(help="Column with each row's time.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing project file.")] = False,
) -> None:
    """Infer the feature spec of DATA and write a project file."""
    from tabops.dataset import read_table
    from tabops.project import save_project
    from tabops.scaffold import build_project

    if output.exists() and not force:
        fail(f"{output} exists; pass --force to overwrite it")
    with reported_errors():
        frame = read_table(data)
        names = tuple(class_names.split(",", 1)) if class_names else None
        if names is not None and len(names) != 2:
            fail("--class-names takes two names separated by a comma")
        project, warnings = build_project(
            frame, data, output, target, name, positive, names, entity=entity, timestamp=timestamp
        )
        save_project(project, output)
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    features = project.schema_.features
    console.print(
        f"[green]wrote {output}[/]: model [bold]{project.name}[/], {len(features)} features, "
        f"target {project.target!r} (positive class {project.positive_class!r})"
    )


@app.command()
def validate(
    data: Annotated[Path, typer.Argument(help="Table to check against the project's spec.")],
    project_path: ProjectOption = Path(PROJECT_FILE),
) -> None:
    """Check a table against the project's feature spec; exit 1 when it fails."""
    from rich.table import Table

    from tabops.project import load_project, read_project_table
    from tabops.validation import validate_frame

    with reported_errors():
        project, _folder = load_project(project_path)
        report = validate_frame(read_project_table(project, data), project.schema_)
    for column in report.unknown_columns:
        console.print(f"[yellow]note:[/] column {column!r} is not in the spec and is ignored")
    for note in report.notes:  # accepted, as serving accepts them; worth knowing of
        rows = f"{note.failed_rows} row{'s' if note.failed_rows != 1 else ''}"
        examples = ", ".join(repr(value) for value in note.examples)
        console.print(f"[yellow]note:[/] {note.column}: {rows} {note.check} (e.g. {examples})")
    if report.is_valid:
        console.print(f"[green]valid[/]: {report.rows} rows match the spec of {project.name}")
        return
    table = Table(title=f"{data.name}: {len(report.failures)} failed checks")
    for heading in ("column", "check", "failed rows", "examples"):
        table.add_column(heading)
    for failure in report.failures:
        examples = ", ".join(repr(value) for value in failure.examples)
        table.add_row(failure.column or "-", failure.check, str(failure.failed_rows), examples)
    error_console.print(table)
    raise typer.Exit(1)


@app.command()
def train(
    project_path: ProjectOption = Path(PROJECT_FILE),
    data: Annotated[Path | None, typer.Option(help="Train on this table instead.")] = None,
    if_absent: Annotated[
        bool, typer.Option(help="Do nothing when the model already has a production version.")
    ] = False,
    promote: Annotated[
        str | None,
        typer.Option(
            metavar="ALIAS",
            help="Point this alias (e.g. production) at the new version if every gate passes.",
        ),
    ] = None,
) -> None:
    """Train the project's candidates, check the gates and register the best model.

    Then says where each alias points; --promote ALIAS moves one to the new version.
    """
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from tabops.cli.training_report import print_training_report
    from tabops.errors import GateFailedError
    from tabops.project import load_project, resolve_data_path
    from tabops.training.register import train_project
    from tabops.training.train import TrainingResult, count_training_steps

    with reported_errors():
        if promote is not None:
            check_alias(promote)
        project, folder = load_project(project_path)
        if if_absent and DEFAULT_ALIAS in open_registry().aliases(project.name):
            console.print(f"{project.name} already has a production version; not training")
            return
        source = resolve_data_path(project, folder, data)
        console.print(f"training [bold]{project.name}[/] on {source}")
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("training", total=count_training_steps(project))

            def advance(step: str, done: float) -> None:
                progress.update(task, advance=done, description=step)

            try:
                outcome = train_project(
                    project, folder, open_registry(), data, advance, promote=promote
                )
            except GateFailedError as exc:
                if isinstance(exc.result, TrainingResult):
                    progress.stop()
                    print_training_report(exc.result)
                raise
    print_training_report(outcome.result)
    number = outcome.version.version
    held = [position.alias for position in outcome.aliases if position.version == number]
    suffix = f" ({', '.join(held)})" if held else ""
    console.print(f"[green]registered[/] {outcome.version.ref}{suffix}")
    if outcome.aliases:
        console.print(f"aliases of {project.name}:")
    for line in outcome.describe_aliases():
        print_whole(f"  {line}")
    console.print(f"model card: tabops models card {outcome.version.ref}")


class Engine(StrEnum):
    """Where ``tabops predict`` scores a file."""

    LOCAL = "local"
    DASK = "dask"


@app.command()
def predict(
    model: Annotated[str, typer.Option("--model", "-m", help="NAME, NAME@alias or NAME:version.")],
    input_path: Annotated[
        Path,
        typer.Option(
            "--input", "-i", help="CSV or Parquet to score (Dask: also a folder of Parquet)."
        ),
    ],
    output_path: Annotated[Path, typer.Option("--output", "-o", help="CSV or Parquet to write.")],
    engine: Annotated[
        Engine, typer.Option(help="Score in this process or on a Dask cluster.")
    ] = Engine.LOCAL,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address (tcp://host:port); a local cluster if omitted."),
    ] = None,
    dask_workers: Annotated[
        int, typer.Option(min=1, help="Worker processes of the local Dask cluster.")
    ] = 2,
) -> None:
    """Score a file with a registered model; the output adds probability, label, class_name."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tabops.integrations.dask import score_file_dask
    from tabops.model.predictor import Predictor
    from tabops.scoring.local import count_rows, score_file

    if scheduler is not None and engine is not Engine.DASK:
        fail("--scheduler needs --engine dask")
    name, ref = parse_model_ref(model)
    with reported_errors():
        predictor = Predictor.load(open_registry(), name, ref)
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=console, transient=True) as bar:
            if engine is Engine.DASK:
                task = bar.add_task(f"scoring {input_path.name} on Dask (partitions)", total=None)

                def advance(rows: int, done: int, total: int) -> None:
                    description = f"scoring {input_path.name} on Dask, {rows:,} rows (partitions)"
                    bar.update(task, completed=done, total=total, description=description)

                result = score_file_dask(
                    predictor,
                    input_path,
                    output_path,
                    scheduler=scheduler,
                    workers=dask_workers,
                    progress=advance,
                )
            else:
                total = count_rows(input_path) if input_path.is_file() else None
                task = bar.add_task(f"scoring {input_path.name} (rows)", total=total)
                result = score_file(
                    predictor,
                    input_path,
                    output_path,
                    progress=lambda rows: bar.update(task, completed=rows),
                )
    console.print(
        f"[green]scored {result.rows:,} rows[/] with {predictor.version.ref} "
        f"({result.positives:,} labelled {predictor.positive[1]}) -> {result.output}"
    )
    if result.errors is not None:
        shown = "; ".join(f"{p.field}: {p.problem}" for p in result.problems[:5])
        console.print(
            f"[yellow]{result.invalid_rows} row(s) failed validation and were left unscored[/] "
            f"({shown}); all listed in {result.errors}"
        )


def main() -> None:
    """Entry point that never shows a traceback for a caller's mistake."""
    try:
        app()
    except KeyboardInterrupt:
        error_console.print("interrupted")
        raise SystemExit(130) from None
