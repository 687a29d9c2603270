"""Fixtures shared by every test tier: the bundled example, a trained registry, an app."""

from __future__ import annotations

import importlib
import io
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from threadpoolctl import threadpool_limits

from s3_server import s3_env, s3_server, s3_url  # noqa: F401 - fixtures of every tier
from tabops.config import Settings
from tabops.model.manifest import Manifest
from tabops.project import PROJECT_FILE, Project, load_project
from tabops.registry import LocalArtifactStore, ModelRegistry
from tabops.server.app import create_app
from tabops.training.register import TrainOutcome, train_project

# The command line's Rich consoles keep the width COLUMNS has when they are made; made here,
# without it, they follow what each test sets (tests run in any order, in several processes).
os.environ.pop("COLUMNS", None)
importlib.import_module("tabops.cli.output")

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "heart-failure"
HEART_CSV = EXAMPLE / "heart_failure_clinical_records_dataset.csv"
DATASETS = REPO.parent / "shared" / "datasets"

# The request body of the heart-failure seed document, byte for byte.
HEART_FEATURES = [
    "age",
    "anaemia",
    "creatinine_phosphokinase",
    "diabetes",
    "ejection_fraction",
    "high_blood_pressure",
    "platelets",
    "serum_creatinine",
    "serum_sodium",
    "sex",
    "smoking",
    "time",
]
"""The example model's features, in the order of its spec."""


def parquet_with_two_bad_rows(heart: pd.DataFrame) -> bytes:
    """The patients as Parquet, with text in row 3's age and no serum sodium in row 7."""
    broken = heart.copy()
    broken["age"] = broken["age"].astype(str)
    broken.loc[3, "age"] = "old"
    broken.loc[7, "serum_sodium"] = float("nan")
    buffer = io.BytesIO()
    broken.to_parquet(buffer, index=False)
    return buffer.getvalue()


def bearer(token: str) -> dict[str, str]:
    """The header carrying an API key."""
    return {"Authorization": f"Bearer {token}"}


SEED_REQUEST = (
    '{   "features": {     "age": 20,     "anaemia": 0,     "creatinine_phosphokinase": 800,'
    '     "diabetes": 0,     "ejection_fraction": 20,     "high_blood_pressure": 0,'
    '     "platelets": 150000,     "serum_creatinine": 1.5,     "serum_sodium": 110,'
    '     "sex": 1,     "smoking": 0,     "time": 3   } }'
)


# Training settings that keep each test's training run to a few seconds, whatever the
# machine's load: a fixed number of settings, with the time cap far away.
FAST_TRAIN: dict[str, Any] = {
    "cv_folds": 3,
    "candidates": ["logistic_regression", "hist_gradient_boosting"],
    "search_settings": 2,
    "time_budget_s": 600,
    "bootstrap_resamples": 200,
}


def copy_fast_example(target: Path) -> Path:
    """A copy of the heart-failure example whose training takes seconds, not a minute."""
    shutil.copytree(EXAMPLE, target)
    path = target / PROJECT_FILE
    document = yaml.safe_load(path.read_text())
    document["train"].update(FAST_TRAIN)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def cli_output(result: Any) -> str:
    """Everything a CLI run printed (stdout and stderr), with line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture
def heart_frame() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A private copy of the heart-failure example project."""
    return copy_fast_example(tmp_path / "project")


@pytest.fixture
def heart_project(project_dir: Path) -> Project:
    project, _folder = load_project(project_dir)
    return project


def stub_manifest(**extra: Any) -> Manifest:
    """The least a manifest must say: target, classes, threshold and one feature."""
    return Manifest.model_validate(
        {
            "target": "y",
            "classes": {"negative": {"value": 0}, "positive": {"value": 1}},
            "threshold": 0.5,
            "feature_spec": {"columns": [{"name": "x", "kind": "numeric"}]},
            **extra,
        }
    )


def make_registry(home: Path) -> ModelRegistry:
    return ModelRegistry(LocalArtifactStore(Settings(home=home).registry_path))


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TABOPS_HOME holding one trained heart-failure version (trained once per session)."""
    home = tmp_path_factory.mktemp("home")
    project, folder = load_project(copy_fast_example(tmp_path_factory.mktemp("project") / "p"))
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


def wait_for(client: TestClient, status_url: str, timeout: float = 60.0) -> dict:
    """A job's document once it has succeeded or failed (polled through the API)."""
    deadline = time.monotonic() + timeout
    document: dict = {}
    while time.monotonic() < deadline:
        document = client.get(status_url).json()
        if document["status"] in ("succeeded", "failed"):
            return document
        time.sleep(0.05)
    raise AssertionError(f"job at {status_url} did not finish: {document}")


def train_heart(project: Project, folder: Path, home: Path) -> TrainOutcome:
    return train_project(project, folder, make_registry(home))


@pytest.fixture(scope="session", autouse=True)
def _one_native_thread() -> Iterator[None]:
    """One BLAS/OpenMP thread per test: parallel native pools spin against each other and
    against the test runner on a 2-core machine, making timings swing by 10x or more."""
    with threadpool_limits(limits=1):
        yield


POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
# One Redis database per test process (pytest-xdist runs the suite in several): the
# fixture below empties its database, which must not be another process's.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_URL = f"redis://127.0.0.1:6379/{15 - _WORKER % 16}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database on 127.0.0.1:5432, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc}")
    name = f"tabops_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> Iterator[str]:
    """URL of this test process's Redis database on 127.0.0.1:6379, emptied before and after."""
    redis = pytest.importorskip("redis", reason="the redis client is not installed")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at 127.0.0.1:6379: {exc}")
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A metadata database URL: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tabops.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
