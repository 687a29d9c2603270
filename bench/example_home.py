"""The bundled heart-failure example, trained quickly into a home for the benchmarks."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tabops.config import Settings
from tabops.project import PROJECT_FILE, load_project
from tabops.registry import LocalArtifactStore, ModelRegistry
from tabops.training.register import train_project

MODEL = "heart-failure"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / MODEL
HEART_CSV = EXAMPLE / "heart_failure_clinical_records_dataset.csv"
QUICK_TRAIN = {"cv_folds": 3, "candidates": ["logistic_regression"], "search_settings": 1}
"""One candidate, one setting, three folds: seconds, where the benchmark is not training."""


def registry_of(home: Path) -> ModelRegistry:
    """The local registry of ``home``."""
    return ModelRegistry(LocalArtifactStore(Settings(home=home).registry_path))


def train_example(home: Path, work: Path) -> None:
    """Train the example once, quickly, into ``home`` (``work`` holds a copy of its project)."""
    project_dir = work / "project"
    shutil.copytree(EXAMPLE, project_dir)
    path = project_dir / PROJECT_FILE
    document = yaml.safe_load(path.read_text())
    document["train"].update(QUICK_TRAIN)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    project, folder = load_project(project_dir)
    train_project(project, folder, registry_of(home))
