"""Fixtures shared by every test tier: the bundled example, a trained registry, an app."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tabops.config import Settings
from tabops.project import Project, load_project
from tabops.registry import LocalArtifactStore, ModelRegistry
from tabops.server.app import create_app
from tabops.training.register import TrainOutcome, train_project

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "heart-failure"
HEART_CSV = EXAMPLE / "heart_failure_clinical_records_dataset.csv"
DATASETS = REPO.parent / "shared" / "datasets"

# The request body of the heart-failure seed document, byte for byte.
SEED_REQUEST = (
    '{   "features": {     "age": 20,     "anaemia": 0,     "creatinine_phosphokinase": 800,'
    '     "diabetes": 0,     "ejection_fraction": 20,     "high_blood_pressure": 0,'
    '     "platelets": 150000,     "serum_creatinine": 1.5,     "serum_sodium": 110,'
    '     "sex": 1,     "smoking": 0,     "time": 3   } }'
)


@pytest.fixture
def heart_frame() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A private copy of the heart-failure example project."""
    target = tmp_path / "project"
    shutil.copytree(EXAMPLE, target)
    return target


@pytest.fixture
def heart_project(project_dir: Path) -> Project:
    project, _folder = load_project(project_dir)
    return project


def make_registry(home: Path) -> ModelRegistry:
    return ModelRegistry(LocalArtifactStore(Settings(home=home).registry_path))


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TABOPS_HOME holding one trained heart-failure version (trained once per session)."""
    home = tmp_path_factory.mktemp("home")
    project, folder = load_project(EXAMPLE)
    train_project(project, folder, make_registry(home))
    return home


@pytest.fixture
def home(trained_home: Path, tmp_path: Path) -> Path:
    """A private copy of the trained home, free to modify."""
    target = tmp_path / "home"
    shutil.copytree(trained_home, target)
    return target


@pytest.fixture
def registry(home: Path) -> ModelRegistry:
    return make_registry(home)


@pytest.fixture
def client(home: Path) -> Iterator[TestClient]:
    """The API over a private trained registry, lifespan run."""
    with TestClient(create_app(Settings(home=home))) as test_client:
        yield test_client


def train_heart(project: Project, folder: Path, home: Path) -> TrainOutcome:
    return train_project(project, folder, make_registry(home))
