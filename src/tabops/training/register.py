"""Training a project end to end: read, validate, train, gate, register."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tabops.dataset import fingerprint_file
from tabops.errors import DataError, GateFailedError, Problem
from tabops.model.manifest import ModelVersion
from tabops.project import Project, read_project_table, resolve_data_path
from tabops.registry.versions import ModelRegistry
from tabops.training.package import package_version_files
from tabops.training.search import ProgressCallback
from tabops.training.train import TrainingResult, train_model
from tabops.validation import validate_frame


@dataclass
class TrainOutcome:
    """A training result and the version it was registered as."""

    result: TrainingResult
    version: ModelVersion


def train_project(
    project: Project,
    project_dir: Path,
    registry: ModelRegistry,
    data_path: Path | None = None,
    progress: ProgressCallback | None = None,
) -> TrainOutcome:
    """Train the project's model and register it when every gate passes.

    Raises:
        DataError: the table cannot be read or breaks the project's feature spec.
        GateFailedError: a gate failed; nothing was registered.
    """
    path = resolve_data_path(project, project_dir, data_path)
    frame = read_project_table(project, path)
    report = validate_frame(frame, project.schema_, require_target=True)
    if not report.is_valid:
        problems = [
            Problem(failure.column or "table", f"{failure.check} ({failure.failed_rows} rows)")
            for failure in report.failures
        ]
        raise DataError(f"{path.name} does not match the project's feature spec", problems)
    result = train_model(project, frame, progress)
    failed = result.failed_gates
    if failed:
        problems = [Problem(g.metric, f"{g.observed:.4f} fails {g.gate}") for g in failed]
        names = ", ".join(f"{g.gate} (got {g.observed:.4f})" for g in failed)
        raise GateFailedError(
            f"gate failed: {names}; nothing was registered", problems, result=result
        )
    files, manifest = package_version_files(project, result, frame, path, fingerprint_file(path))
    version = registry.register(project.name, files, manifest)
    return TrainOutcome(result=result, version=version)
