"""Can a trained model be trusted? Resampling, calibration, thresholds, guards, intervals, CLI.

Every run trains a real project on a small crafted table, with fast settings.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from imblearn.over_sampling import SMOTE
from imblearn.under_sampling import RandomUnderSampler
from sklearn.metrics import brier_score_loss
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

from tabops.cli.main import app
from tabops.config import get_settings
from tabops.errors import ProjectError, TrainingError
from tabops.model.calibration import CalibratedPipeline
from tabops.model.files import CARD_FILE, MODEL_FILE, dump_model, load_model
from tabops.project import PROJECT_FILE, Project, TrainSettings, load_project, save_project
from tabops.registry import LocalArtifactStore, ModelRegistry
from tabops.schema import Role, coerce_frame, infer_schema
from tabops.training import candidates
from tabops.training.package import package_version_files
from tabops.training.train import TrainingResult, train_model

ROWS = 300
FAST: dict[str, Any] = {
    "cv_folds": 3,
    "search_settings": 2,
    "time_budget_s": 600,
    "bootstrap_resamples": 100,
    "candidates": ["logistic_regression"],
}
# The first feature column; with a tree candidate the numbers are imputed, never scaled, so
# column 0 of what a sampler receives is this marker unchanged: row position + 0.5.
MARKER = "row_marker"


def table(seed: int = 0, positive_share: float = 0.3, leak: bool = False) -> pd.DataFrame:
    """A marker, an informative feature, noise, a category and ``y``; ``echo`` leaks ``y``."""
    rng = np.random.default_rng(seed)
    y = (rng.random(ROWS) < positive_share).astype(int)
    frame = pd.DataFrame(
        {
            MARKER: np.arange(ROWS) + 0.5,
            "signal": rng.normal(size=ROWS) + 1.5 * y,
            "noise": rng.normal(size=ROWS),
            "colour": rng.choice(["red", "green", "blue"], size=ROWS),
        }
    )
    if leak:
        frame["echo"] = y + rng.normal(scale=0.05, size=ROWS)
    return frame.assign(y=y)


def make_project(frame: pd.DataFrame, **train: Any) -> Project:
    return Project(
        name="demo",
        data="table.csv",
        target="y",
        positive_class=1,
        class_names={"0": "no", "1": "yes"},
        schema_=infer_schema(frame, "y").spec,
        train=TrainSettings(**(FAST | train)),
    )


def inner_pipeline(model: Any) -> Any:
    return model.pipeline if isinstance(model, CalibratedPipeline) else model


def assert_no_sampler(model: Any) -> None:
    pipeline = inner_pipeline(model)
    assert type(pipeline) is Pipeline
    assert [name for name, _step in pipeline.steps] == ["encode", "prepare", "model"]
    assert not any(hasattr(step, "fit_resample") for _name, step in pipeline.steps)


def package(project: Project, result: TrainingResult, frame: pd.DataFrame, folder: Path):
    files, manifest = package_version_files(project, result, frame, folder / "table.csv", "0" * 64)
    return files, manifest.document()


def validation_features(project: Project, frame: pd.DataFrame, result: TrainingResult):
    features = coerce_frame(frame, project.schema_)
    rows = result.split.validation
    return features.iloc[rows], frame["y"].to_numpy()[rows]


# resampling ------------------------------------------------------------------------------


@pytest.fixture
def sampled_rows(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """The row positions every ``fit_resample`` call received, one set per call."""
    calls: list[set[int]] = []

    def record(x: Any) -> None:
        markers = np.asarray(x, dtype=float)[:, 0]
        assert np.all(markers % 1 == 0.5), "column 0 is not the row marker"
        calls.append({int(marker) for marker in markers})

    class RecordingUnderSampler(RandomUnderSampler):
        def fit_resample(self, X, y, **params):
            record(X)
            return super().fit_resample(X, y, **params)

    class RecordingSMOTE(SMOTE):
        def fit_resample(self, X, y, **params):
            record(X)
            return super().fit_resample(X, y, **params)

    monkeypatch.setattr(candidates, "RandomUnderSampler", RecordingUnderSampler)
    monkeypatch.setattr(candidates, "SMOTE", RecordingSMOTE)
    return calls


@pytest.mark.parametrize("imbalance", ["undersample", "smote"])
def test_resampling_without_refit_sees_only_training_rows(imbalance, sampled_rows, tmp_path):
    frame = table(positive_share=0.2)
    project = make_project(
        frame, imbalance=imbalance, candidates=["hist_gradient_boosting"], refit=False
    )

    result = train_model(project, frame)

    train = set(result.split.train.tolist())
    held_out = set(result.split.validation.tolist()) | set(result.split.test.tolist())
    assert sampled_rows, "the sampler was never called"
    for rows in sampled_rows:
        assert rows <= train
        assert rows.isdisjoint(held_out)
    assert sampled_rows[-1] == train  # the chosen setting, fit on every training row
    assert_stored_model_has_no_sampler(project, result, frame, tmp_path)


@pytest.mark.parametrize("imbalance", ["undersample", "smote"])
def test_resampling_with_refit_never_sees_test_rows(imbalance, sampled_rows, tmp_path):
    frame = table(positive_share=0.2)
    project = make_project(
        frame, imbalance=imbalance, candidates=["hist_gradient_boosting"], refit=True
    )

    result = train_model(project, frame)

    train = set(result.split.train.tolist())
    validation = set(result.split.validation.tolist())
    test = set(result.split.test.tolist())
    *searched, refitted = sampled_rows
    assert searched
    for rows in searched:
        assert rows <= train
    # The refit learns from train + validation only after the threshold was chosen on them.
    assert refitted == train | validation
    assert all(rows.isdisjoint(test) for rows in sampled_rows)
    assert_stored_model_has_no_sampler(project, result, frame, tmp_path)


def assert_stored_model_has_no_sampler(
    project: Project, result: TrainingResult, frame: pd.DataFrame, folder: Path
) -> None:
    assert_no_sampler(result.model)
    files, manifest = package(project, result, frame, folder)
    loaded = load_model(files[MODEL_FILE])
    assert_no_sampler(loaded)
    x = coerce_frame(frame, project.schema_).iloc[result.split.test]
    np.testing.assert_array_equal(loaded.predict_proba(x), result.model.predict_proba(x))
    # Nothing was resampled in the held-out sets: their counts are the split's.
    for name in ("train", "validation", "test"):
        rows = getattr(result.split, name)
        assert result.rows[name] == len(rows)
        assert result.positives[name] == int(frame["y"].to_numpy()[rows].sum())
    assert result.rows["total"] == ROWS
    assert result.test.rows == len(result.split.test)
    assert result.validation.rows == len(result.split.validation)
    assert manifest["data"]["rows"] == result.rows


# calibration -----------------------------------------------------------------------------


@pytest.mark.parametrize("calibration", ["auto", "sigmoid", "isotonic"])
@pytest.mark.parametrize("imbalance", ["undersample", "none"])
def test_calibration_is_kept_only_when_it_lowers_the_validation_brier(calibration, imbalance):
    frame = table(positive_share=0.2)
    project = make_project(frame, calibration=calibration, imbalance=imbalance, refit=False)

    result = train_model(project, frame)

    outcome = result.calibration
    x_validation, y_validation = validation_features(project, frame, result)
    brier = brier_score_loss(y_validation, result.model.predict_proba(x_validation)[:, 1])
    assert outcome["brier_after"] is not None
    assert outcome["kept"] == (outcome["brier_after"] < outcome["brier_before"])
    if outcome["kept"]:
        assert isinstance(result.model, CalibratedPipeline)
        assert result.model.calibrator.method == outcome["method"]
        assert brier == pytest.approx(outcome["brier_after"])
    else:
        assert type(result.model) is Pipeline
        assert brier == pytest.approx(outcome["brier_before"])
    if calibration != "auto":
        assert outcome["method"] == calibration


def test_calibration_fixes_undersampled_probabilities_and_round_trips(tmp_path):
    # Under-sampling to a 50/50 balance inflates the probabilities of a 10%-positive table.
    frame = table(positive_share=0.1, seed=3)
    project = make_project(frame, imbalance="undersample", calibration="sigmoid")

    result = train_model(project, frame)

    assert result.calibration["kept"] is True
    assert isinstance(result.model, CalibratedPipeline)
    loaded = load_model(dump_model(result.model))
    assert isinstance(loaded, CalibratedPipeline)
    x = coerce_frame(frame, project.schema_)
    np.testing.assert_array_equal(loaded.predict_proba(x), result.model.predict_proba(x))
    files, _manifest = package(project, result, frame, tmp_path)
    reloaded = load_model(files[MODEL_FILE])
    np.testing.assert_array_equal(reloaded.predict_proba(x), result.model.predict_proba(x))


def test_calibration_none_stores_the_plain_pipeline():
    frame = table()
    project = make_project(frame, calibration="none")

    result = train_model(project, frame)

    assert type(result.model) is Pipeline
    assert result.calibration["method"] == "none"
    assert result.calibration["kept"] is False
    assert result.calibration["brier_after"] is None


# thresholds ------------------------------------------------------------------------------


def assert_sentence(reason: str) -> None:
    assert reason[0].isalpha()
    assert len(reason.split()) >= 5
    assert "validation rows" in reason


def test_min_recall_policy_reaches_the_recall_floor_on_validation_rows():
    frame = table()
    project = make_project(frame, threshold={"min_recall": 0.9})

    result = train_model(project, frame)

    choice = result.threshold
    assert choice.met is True
    assert choice.policy == "min_recall 0.9"
    assert choice.validation["recall"] >= 0.9
    assert result.validation.metrics["recall"] == pytest.approx(choice.validation["recall"])
    assert_sentence(choice.reason)
    assert "recall >= 0.9" in choice.reason


def test_costly_false_negatives_give_a_lower_threshold_than_equal_costs():
    frame = table()
    even = make_project(frame, threshold={"cost": {"false_positive": 1, "false_negative": 1}})
    costly = make_project(frame, threshold={"cost": {"false_positive": 1, "false_negative": 20}})

    even_choice = train_model(even, frame).threshold
    costly_choice = train_model(costly, frame).threshold

    assert costly_choice.threshold < even_choice.threshold
    assert costly_choice.policy == "cost fp=1 fn=20"
    assert costly_choice.validation["recall"] >= even_choice.validation["recall"]
    for choice in (even_choice, costly_choice):
        assert_sentence(choice.reason)
        assert choice.reason.startswith("lowest cost")


def test_default_threshold_reason_names_the_highest_f1():
    frame = table()

    choice = train_model(make_project(frame), frame).threshold

    assert choice.policy == "max_f1"
    assert_sentence(choice.reason)
    assert choice.reason.startswith("highest F1")


# guards ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory):
    """One training run on a table with ``echo``, a noisy copy of the target."""
    frame = table(leak=True)
    project = make_project(frame, candidates=["logistic_regression", "hist_gradient_boosting"])
    result = train_model(project, frame)
    files, manifest = package(project, result, frame, tmp_path_factory.mktemp("leaky"))
    return project, result, files, manifest


def test_leaky_column_is_a_probable_leak_warning_in_the_result(leaky):
    _project, result, _files, _manifest = leaky

    [leak] = [finding for finding in result.guards if finding.guard == "probable_leak"]

    assert leak.column == "echo"
    assert leak.severity == "warning"
    assert leak.value is not None
    assert leak.value > 0.98
    assert "'echo'" in leak.message


def test_leaky_column_warning_is_in_the_manifest_and_the_card(leaky):
    _project, result, files, manifest = leaky
    [leak] = [finding for finding in result.guards if finding.guard == "probable_leak"]

    assert leak.model_dump() in manifest["guards"]
    card = files[CARD_FILE].decode()
    assert "probable_leak" in card
    assert leak.message in html.unescape(card)


def test_target_listed_as_a_feature_is_refused_by_the_project_file(tmp_path):
    frame = table()
    document = make_project(frame).model_dump(mode="json", by_alias=True, exclude_none=True)
    [target] = [column for column in document["schema"]["columns"] if column["name"] == "y"]
    target["role"] = "feature"
    (tmp_path / PROJECT_FILE).write_text(yaml.safe_dump(document))

    with pytest.raises(ProjectError) as caught:
        load_project(tmp_path)

    problems = " ".join(problem.problem for problem in caught.value.problems)
    assert "target column 'y' must not be a feature" in problems


def test_target_listed_as_a_feature_stops_training_naming_it():
    frame = table()
    project = make_project(frame)
    project.schema_.column("y").role = Role.FEATURE  # past the project file's own check

    with pytest.raises(TrainingError, match="the target 'y' is listed as a feature"):
        train_model(project, frame)


# metrics ---------------------------------------------------------------------------------


def test_test_metrics_hold_log_loss_and_a_bootstrap_interval_around_each_value(leaky):
    _project, result, _files, manifest = leaky
    metrics, intervals = result.test.metrics, result.test.intervals

    assert {"roc_auc", "pr_auc", "brier", "log_loss", "f1", "recall"} <= set(metrics)
    assert metrics["log_loss"] > 0
    assert set(intervals) == set(metrics)
    for name, value in metrics.items():
        low, high = intervals[name]
        assert low <= value <= high, name
    assert manifest["intervals"] == {name: list(pair) for name, pair in intervals.items()}


def test_no_bootstrap_resamples_gives_no_intervals():
    frame = table()

    result = train_model(make_project(frame, bootstrap_resamples=0), frame)

    assert result.test.intervals == {}
    assert "log_loss" in result.test.metrics


# CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("TABOPS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def test_cli_train_prints_guards_split_leaderboard_calibration_threshold_and_intervals(
    cli_home, tmp_path
):
    folder = tmp_path / "project"
    folder.mkdir()
    frame = table(leak=True)
    frame.to_csv(folder / "table.csv", index=False)
    save_project(make_project(frame), folder / PROJECT_FILE)

    result = CliRunner().invoke(app, ["train", "-p", str(folder)])

    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    registry = ModelRegistry(LocalArtifactStore(get_settings().registry_path))
    manifest = registry.get_version("demo", 1).manifest.document()
    [leak] = [g for g in manifest["guards"] if g["guard"] == "probable_leak"]
    assert f"warning: {leak['message']}" in printed
    assert f"split: {manifest['split']}" in printed
    assert "candidates (cross-validated on training rows)" in printed
    assert "logistic_regression" in printed
    assert "calibration: " in printed
    assert manifest["threshold_reason"] in printed
    assert "95% interval" in printed
    low, high = manifest["intervals"]["roc_auc"]
    assert f"{low:.3f} to {high:.3f}" in printed
    assert "registered demo:1" in printed
