"""``tabops features``: build the offline feature table, materialise it, import a table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tabops.cli.output import PROJECT_FILE, console, reported_errors

if TYPE_CHECKING:
    from tabops.feature_store.base import MaterializeReport

app = typer.Typer(
    help="Compute features and keep the online store up to date.", no_args_is_help=True
)

ProjectOption = Annotated[Path, typer.Option("--project", "-p", help="Project file or its folder.")]


def _print_report(report: MaterializeReport) -> None:
    console.print(
        f"[green]view {report.view}[/]: {report.entities} entities, {report.inserted} new, "
        f"{report.updated} updated, {report.unchanged} unchanged ({report.seconds:.2f} s)"
    )


@app.command("build")
def build(
    project_path: ProjectOption = Path(PROJECT_FILE),
    data: Annotated[Path | None, typer.Option(help="Read this table instead.")] = None,
) -> None:
    """Compute the project's feature table (Parquet under TABOPS_HOME/features/VIEW)."""
    from tabops.config import get_settings
    from tabops.feature_store.offline import build_feature_table
    from tabops.project import load_project

    with reported_errors():
        project, folder = load_project(project_path)
        with console.status(f"computing the features of {project.name}"):
            report = build_feature_table(project, folder, get_settings().home, data)
    console.print(
        f"[green]built view {report.view}[/]: {report.rows} rows, {report.entities} entities, "
        f"{len(report.features)} features in {report.seconds:.1f} s -> {report.path}"
    )


@app.command("materialize")
def materialize_command(
    project_path: ProjectOption = Path(PROJECT_FILE),
    rebuild: Annotated[bool, typer.Option(help="Build the feature table first.")] = False,
) -> None:
    """Write each entity's latest feature row to the online store (changed ones only)."""
    from tabops.config import get_settings
    from tabops.feature_store.offline import materialize
    from tabops.feature_store.sql import open_feature_store
    from tabops.project import load_project

    with reported_errors():
        project, folder = load_project(project_path)
        settings = get_settings()
        with console.status(f"materialising view {project.view}"):
            report = materialize(
                project, folder, settings.home, open_feature_store(settings), build=rebuild
            )
    _print_report(report)


@app.command("import")
def import_command(
    source: Annotated[Path, typer.Argument(help="CSV, Parquet or SQLite file of features.")],
    view: Annotated[str, typer.Option(help="Name of the view to write.")],
    entity: Annotated[str, typer.Option(help="Column holding the entity id.")],
    event_time: Annotated[
        str | None, typer.Option(help="Column holding each row's event time.")
    ] = None,
    table: Annotated[str | None, typer.Option(help="Table name, for a SQLite file.")] = None,
    drop: Annotated[
        list[str] | None, typer.Option(help="Column to leave out (repeatable), e.g. a label.")
    ] = None,
) -> None:
    """Load a ready table of per-entity features (one row each) into the online store."""
    from tabops.config import get_settings
    from tabops.feature_store.importing import import_table
    from tabops.feature_store.sql import open_feature_store

    with reported_errors():
        store = open_feature_store(get_settings())
        with console.status(f"importing {source.name} into view {view}"):
            report = import_table(
                store, view, source, entity, event_time, table_name=table, drop=drop or ()
            )
    _print_report(report)
