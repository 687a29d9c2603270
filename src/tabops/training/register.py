"""Training a project end to end: read, validate, train, gate, register, promote."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tabops.dataset import fingerprint_file
from tabops.errors import DataError, GateFailedError, Problem
from tabops.model.manifest import ModelVersion
from tabops.project import Project, read_project_table, resolve_data_path
from tabops.registry.versions import DEFAULT_ALIAS, ModelRegistry, check_alias
from tabops.training.package import package_version_files
from tabops.training.search import ProgressCallback
from tabops.training.train import TrainingResult, train_model
from tabops.validation import validate_frame


@dataclass(frozen=True)
class AliasPosition:
    """Where an alias of the trained model points once training is over, and before."""

    alias: str
    version: int
    previous: int | None


@dataclass
class TrainOutcome:
    """A training result, the version it was registered as, and every alias of the model."""

    result: TrainingResult
    version: ModelVersion
    aliases: list[AliasPosition] = field(default_factory=list)
    promoted: str | None = None

    @property
    def moved(self) -> list[str]:
        """The aliases that point at the new version: every one of them moved to it."""
        return [p.alias for p in self.aliases if p.version == self.version.version]

    def describe_aliases(self) -> list[str]:
        """One line per alias: the version it points to, and how to move it to the new one.

        For example ``production -> 2 (unchanged; promote with: tabops models promote
        heart-failure 3)``. A model without aliases gets one line saying how to add one.
        """
        name, new = self.version.name, self.version.version
        if not self.aliases:
            return [
                f"no alias points at {new} yet; promote with: tabops models promote {name} {new}"
            ]
        lines = []
        for position in self.aliases:
            was = f", was {position.previous}" if position.previous is not None else ""
            if position.version != new:
                option = "" if position.alias == DEFAULT_ALIAS else f" --alias {position.alias}"
                note = f"unchanged; promote with: tabops models promote {name} {new}{option}"
            elif position.alias == self.promoted:
                note = f"promoted{was}"
            elif position.previous is None:
                note = f"the first version of {name}" if new == 1 else "the model had no such alias"
            else:
                note = f"moved by another process{was}"
            lines.append(f"{position.alias} -> {position.version} ({note})")
        return lines


def train_project(
    project: Project,
    project_dir: Path,
    registry: ModelRegistry,
    data_path: Path | None = None,
    progress: ProgressCallback | None = None,
    *,
    promote: str | None = None,
    first_alias: str | None = DEFAULT_ALIAS,
) -> TrainOutcome:
    """Train the project's model, register it when every gate passes, and maybe promote it.

    A version takes ``first_alias`` when the model has no such alias yet (by default the
    first version becomes ``production``); otherwise no alias moves unless ``promote``
    names one. Training requested over the network passes None, so that only ``promote``
    can put a version in service.

    Args:
        project: The project to train.
        project_dir: The folder its relative paths start from.
        registry: Where the new version goes.
        data_path: A table to train on instead of the project's.
        progress: Called as training steps finish.
        promote: An alias to point at the new version once it is registered.
        first_alias: An alias the version takes when the model has none of that name.

    Raises:
        RegistryError: an alias is not a valid alias name (checked before training).
        DataError: the table cannot be read or breaks the project's feature spec.
        GateFailedError: a gate failed; nothing was registered or promoted.
    """
    for alias in (promote, first_alias):
        if alias is not None:
            check_alias(alias)
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
    before = registry.aliases(project.name)
    version = registry.register(project.name, files, manifest, first_alias=first_alias)
    if promote is not None:
        registry.set_alias(project.name, promote, version.version)
    positions = [
        AliasPosition(alias, number, before.get(alias))
        for alias, number in sorted(registry.aliases(project.name).items())
    ]
    return TrainOutcome(result=result, version=version, aliases=positions, promoted=promote)
