"""Offline to online: build a project's feature table, then materialise its latest rows.

``build_feature_table`` runs the same code as training over the project's table and keeps
the result as Parquet under ``<home>/features/<view>/``, with a record of the definitions
it was built from. ``materialize`` writes each entity's latest row of that table into the
online store; the store writes only the entities whose values changed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from tabops import atomic
from tabops.dataset import fingerprint_file
from tabops.errors import DataError, Problem
from tabops.feature_store.base import FeatureStore, MaterializeReport
from tabops.features import latest_rows
from tabops.project import Project, read_project_table, resolve_data_path

TABLE_FILE = "table.parquet"
BUILD_FILE = "build.json"


@dataclass
class BuildReport:
    """What ``build_feature_table`` wrote."""

    view: str
    path: str
    rows: int
    entities: int
    features: list[str]
    fingerprint: str | None
    source: str
    source_sha256: str
    seconds: float
    built: str


def feature_folder(home: Path, view: str) -> Path:
    """Where a view's offline feature table lives."""
    return home / "features" / view


def build_feature_table(
    project: Project, project_dir: Path, home: Path, data: Path | None = None
) -> BuildReport:
    """Compute the project's feature table and store it as Parquet, atomically.

    Raises:
        DataError: the project has no entity column, or its table cannot be read or lacks
            a column the definitions read.
    """
    entity = _entity(project)
    started = time.perf_counter()
    source = resolve_data_path(project, project_dir, data)
    table = read_project_table(project, source)
    folder = feature_folder(home, project.view)
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_with(folder / TABLE_FILE, lambda path: table.to_parquet(path, index=False))
    report = BuildReport(
        view=project.view,
        path=str(folder / TABLE_FILE),
        rows=len(table),
        entities=int(table[entity].nunique()),
        features=project.schema_.feature_names,
        fingerprint=project.features.fingerprint() if project.features else None,
        source=str(source),
        source_sha256=fingerprint_file(source),
        seconds=round(time.perf_counter() - started, 3),
        built=datetime.now(UTC).isoformat(),
    )
    text = json.dumps(asdict(report), indent=2)
    atomic.write_with(folder / BUILD_FILE, lambda path: path.write_text(text))
    return report


def load_feature_table(project: Project, home: Path) -> pd.DataFrame:
    """The built feature table of a project.

    Raises:
        DataError: it was never built, or built from other feature definitions.
    """
    folder = feature_folder(home, project.view)
    if not (folder / TABLE_FILE).is_file():
        raise DataError(
            f"no feature table for view {project.view!r}; run 'tabops features build' first"
        )
    built = json.loads((folder / BUILD_FILE).read_text())
    current = project.features.fingerprint() if project.features else None
    if built.get("fingerprint") != current:
        raise DataError(
            f"the feature table of view {project.view!r} was built from other feature "
            "definitions; run 'tabops features build' again"
        )
    return pd.read_parquet(folder / TABLE_FILE)


def materialize(
    project: Project, project_dir: Path, home: Path, store: FeatureStore, *, build: bool = False
) -> MaterializeReport:
    """Write each entity's latest feature row to the online store (changed entities only).

    With ``build``, or when no table was built yet, the table is built first.
    """
    entity = _entity(project)
    folder = feature_folder(home, project.view)
    if build or not (folder / TABLE_FILE).is_file():
        build_feature_table(project, project_dir, home)
    table = load_feature_table(project, home)
    latest = latest_rows(table, entity, project.timestamp)
    columns = [entity, *([project.timestamp] if project.timestamp else [])]
    return store.write(
        project.view,
        latest[columns + project.schema_.feature_names],
        entity,
        project.timestamp,
    )


def _entity(project: Project) -> str:
    if project.entity is None:
        raise DataError(
            f"project {project.name} has no entity column, so it has no features by entity",
            [Problem("entity", "set entity: in tabops.yaml")],
        )
    return project.entity
