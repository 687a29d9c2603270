"""``train_project`` end to end on the heart-failure example, into a real local registry."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from conftest import EXAMPLE, FAST_TRAIN, HEART_CSV, make_registry
from tabops.dataset import fingerprint_file
from tabops.errors import DataError, GateFailedError
from tabops.project import PROJECT_FILE, Project, load_project
from tabops.registry import ModelRegistry
from tabops.training.register import TrainOutcome, train_project

METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "mcc", "brier")
MODEL = "heart-failure"


def copy_project(target: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """A copy of the example whose tabops.yaml uses 3 CV folds, edited further by ``edit``."""
    shutil.copytree(EXAMPLE, target)
    path = target / PROJECT_FILE
    document = yaml.safe_load(path.read_text())
    document["train"].update(FAST_TRAIN)
    if edit is not None:
        edit(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


class Trained:
    """One successful training run of the example (shared by the tests of this module)."""

    def __init__(self, folder: Path, home: Path) -> None:
        self.project, self.folder = load_project(folder)
        self.registry = make_registry(home)
        self.outcome: TrainOutcome = train_project(self.project, self.folder, self.registry)
        self.manifest = self.outcome.version.manifest.document()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("training")
    return Trained(copy_project(root / "project"), root / "home")


def test_train_project_registers_version_one_as_production(trained):
    assert trained.outcome.version.version == 1
    assert trained.registry.list_models() == [MODEL]
    assert trained.registry.list_versions(MODEL) == [1]
    assert trained.registry.aliases(MODEL) == {"production": 1}
    assert trained.registry.resolve(MODEL) == 1


def test_train_project_passes_the_example_gate(trained):
    [gate] = trained.outcome.result.gates
    assert gate.metric == "roc_auc"
    assert gate.passed
    assert gate.observed >= 0.75
    assert trained.manifest["gates"] == [gate.model_dump()]


def test_train_project_manifest_holds_test_metrics_and_threshold(trained):
    metrics = trained.manifest["metrics"]

    for name in METRICS:
        assert isinstance(metrics[name], float), name
    for name in ("roc_auc", "pr_auc", "f1", "precision", "recall", "brier"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert -1.0 <= metrics["mcc"] <= 1.0
    assert metrics == trained.outcome.result.test.metrics
    assert 0.0 < trained.manifest["threshold"] < 1.0
    assert trained.manifest["threshold"] == trained.outcome.result.threshold.threshold


def test_train_project_manifest_records_the_data_and_split_rows(trained):
    data = trained.manifest["data"]

    assert data["path"] == HEART_CSV.name
    assert data["sha256"] == fingerprint_file(HEART_CSV)
    assert data["sha256"] == hashlib.sha256(HEART_CSV.read_bytes()).hexdigest()
    rows = data["rows"]
    assert rows["total"] == 299
    assert rows["train"] + rows["validation"] + rows["test"] == 299


def test_train_project_manifest_records_time_libraries_and_classes(trained):
    manifest = trained.manifest

    assert manifest["training_seconds"] > 0
    assert {"python", "tabops", "scikit-learn", "numpy", "pandas", "skops"} <= set(
        manifest["library_versions"]
    )
    assert manifest["classes"] == {
        "negative": {"value": 0, "name": "survived"},
        "positive": {"value": 1, "name": "dead"},
    }
    assert manifest["candidate"] in FAST_TRAIN["candidates"]
    assert {score["name"] for score in manifest["leaderboard"]} == {
        "logistic_regression",
        "hist_gradient_boosting",
    }


def test_train_project_manifest_holds_the_feature_spec(trained):
    assert trained.manifest["feature_spec"] == trained.project.schema_.model_dump(mode="json")


def test_train_project_manifest_file_hashes_match_the_stored_files(trained):
    files = trained.manifest["files"]

    assert set(files) == {
        "model.skops",
        "model.onnx",
        "golden.parquet",
        "reference.parquet",
        "reference_stats.json",
        "card.html",
    }
    for name, digest in files.items():
        data = trained.registry.read_file(MODEL, 1, name)
        assert hashlib.sha256(data).hexdigest() == digest, name


def test_train_project_impossible_gate_raises_and_registers_nothing(tmp_path):
    def impossible(document: dict[str, Any]) -> None:
        document["gates"] = {"roc_auc": ">=0.999"}

    project, folder = load_project(copy_project(tmp_path / "project", impossible))
    registry: ModelRegistry = make_registry(tmp_path / "home")

    with pytest.raises(GateFailedError) as caught:
        train_project(project, folder, registry)

    assert "roc_auc" in caught.value.message
    assert [problem.field for problem in caught.value.problems] == ["roc_auc"]
    assert registry.list_versions(MODEL) == []
    assert registry.list_models() == []


def broken_copy(project: Project, folder: Path, tmp_path: Path) -> Path:
    frame = pd.read_csv(folder / project.data)
    frame["ejection_fraction"] = frame["ejection_fraction"].astype(object)
    frame.loc[[0, 1], "ejection_fraction"] = "many"
    frame = frame.drop(columns=["smoking"])
    path = tmp_path / "broken.csv"
    frame.to_csv(path, index=False)
    return path


def test_train_project_data_breaking_the_spec_raises_data_error(heart_project, project_dir):
    registry = make_registry(project_dir.parent / "home")
    broken = broken_copy(heart_project, project_dir, project_dir.parent)

    with pytest.raises(DataError) as caught:
        train_project(heart_project, project_dir, registry, data_path=broken)

    fields = {problem.field for problem in caught.value.problems}
    assert fields == {"ejection_fraction", "smoking"}
    assert registry.list_models() == []


def test_train_project_missing_target_raises_data_error(heart_project, project_dir):
    path = project_dir / "no_target.csv"
    pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"]).to_csv(path, index=False)

    with pytest.raises(DataError) as caught:
        train_project(heart_project, project_dir, make_registry(project_dir / "home"), path)

    assert [problem.field for problem in caught.value.problems] == ["DEATH_EVENT"]


def test_train_project_missing_data_file_raises_data_error(heart_project, project_dir):
    (project_dir / heart_project.data).unlink()

    with pytest.raises(DataError, match="no data file"):
        train_project(heart_project, project_dir, make_registry(project_dir / "home"))
