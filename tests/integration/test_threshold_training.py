"""A threshold that catches no positive is said out loud: in the result, manifest, card, CLI.

Every run trains a real project on a small crafted table with a time split, fast settings.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import stub_manifest
from tabops.cli.main import app
from tabops.config import get_settings
from tabops.model.files import CARD_FILE
from tabops.model.manifest import Manifest
from tabops.project import PROJECT_FILE, Project, TrainSettings, save_project
from tabops.schema import infer_schema
from tabops.training.package import package_version_files
from tabops.training.train import TrainingResult, train_model

ROWS = 300
OUTLIER = 200  # a validation row: train is days 0-179, validation 180-239, test 240-299
FAST: dict[str, Any] = {
    "cv_folds": 3,
    "bootstrap_resamples": 0,
    "candidates": ["logistic_regression"],
    "split": "time",
    "calibration": "none",
}
# False alarms cost, misses do not: the policy takes the lowest threshold without a false
# positive on the validation rows.
ALARMS_ONLY = {"cost": {"false_positive": 1, "false_negative": 0}}


def table() -> pd.DataFrame:
    """``signal`` tells the classes apart, save one negative validation row far above all."""
    rng = np.random.default_rng(0)
    y = (rng.random(ROWS) < 0.3).astype(int)
    signal = rng.normal(size=ROWS) + 1.5 * y
    y[OUTLIER], signal[OUTLIER] = 0, 12.0
    return pd.DataFrame(
        {
            "day": pd.date_range("2024-01-01", periods=ROWS, freq="D").strftime("%Y-%m-%d"),
            "signal": signal,
            "noise": rng.normal(size=ROWS),
            "y": y,
        }
    )


def make_project(frame: pd.DataFrame, **train: Any) -> Project:
    spec = infer_schema(frame, "y").spec
    return Project(
        name="alarms",
        data="table.csv",
        target="y",
        timestamp="day",
        positive_class=1,
        class_names={"0": "no", "1": "yes"},
        schema_=spec,
        train=TrainSettings(**(FAST | train)),
    )


@pytest.fixture(scope="module")
def silent() -> tuple[Project, pd.DataFrame, TrainingResult]:
    """One run whose threshold sits above every validation and test score."""
    frame = table()
    project = make_project(frame, threshold=ALARMS_ONLY)
    return project, frame, train_model(project, frame)


def test_threshold_catching_no_positive_is_a_note_for_validation_and_test(silent):
    _project, _frame, result = silent

    assert result.validation.confusion["tp"] == result.test.confusion["tp"] == 0
    assert result.threshold_warnings == [
        f"the threshold {result.threshold.threshold:.4g} catches none of the "
        f"{result.positives[rows]} positives of the {rows} rows (it flags no row): at this "
        "cut-off the model flags nothing useful; see the operating points, or set "
        "train.threshold to {min_recall: 0.3}"
        for rows in ("validation", "test")
    ]
    assert set(result.threshold_warnings) <= set(result.notes)


def test_operating_points_are_chosen_on_validation_and_measured_on_test(silent):
    _project, frame, result = silent
    y = frame["y"].to_numpy()

    validation, test = result.operating_points, result.test_operating_points
    assert [point.label for point in validation] == [point.label for point in test]
    assert len(validation) == 6
    for chosen, measured in zip(validation, test, strict=True):
        assert measured.threshold == chosen.threshold
        assert measured.flagged == int((result.p_test >= chosen.threshold).sum())
        assert measured.true_positives == int(
            ((result.p_test >= chosen.threshold) & (y[result.split.test] == 1)).sum()
        )
    # The policy's cut-off catches nothing, yet the recall points do catch failures.
    assert all(point.true_positives > 0 for point in validation[3:])
    assert sum(point.true_positives for point in test) > 0


def test_manifest_and_card_carry_the_warning_and_the_operating_points(silent, tmp_path):
    project, frame, result = silent

    files, manifest = package_version_files(project, result, frame, tmp_path / "t.csv", "0" * 64)

    stored = Manifest.from_json(manifest.to_json())
    assert stored.operating_points == {
        "validation": [point.model_dump() for point in result.operating_points],
        "test": [point.model_dump() for point in result.test_operating_points],
    }
    assert stored.document()["operating_points"] == stored.operating_points
    assert set(result.threshold_warnings) <= set(stored.notes)
    card = html.unescape(files[CARD_FILE].decode())
    assert 'id="threshold-warning"' in card
    assert 'id="operating-points"' in card
    for warning in result.threshold_warnings:
        assert card.count(warning) == 2  # under notes on this run and beside the threshold


def test_threshold_that_catches_positives_adds_no_warning():
    frame = table()

    result = train_model(make_project(frame, threshold={"min_recall": 0.5}), frame)

    assert result.threshold_warnings == []
    assert not any("catches" in note for note in result.notes)
    assert result.test.confusion["tp"] > 0


def test_manifest_without_operating_points_still_loads_and_stays_without_them():
    old = stub_manifest(notes=["an old note"])

    loaded = Manifest.from_json(old.to_json())

    assert loaded.operating_points == {}
    assert "operating_points" not in loaded.document()


def test_cli_train_prints_the_warning_and_the_operating_points(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("TABOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    folder = tmp_path / "project"
    folder.mkdir()
    frame = table()
    frame.to_csv(folder / "table.csv", index=False)
    save_project(make_project(frame, threshold=ALARMS_ONLY), folder / PROJECT_FILE)

    try:
        result = CliRunner().invoke(app, ["train", "-p", str(folder)])
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert "warning: the threshold" in printed
    assert "catches none of the" in printed
    assert "positives of the test rows" in printed
    assert "note: the threshold" not in printed  # printed once, as a warning
    assert "operating points (chosen on validation rows)" in printed
    for label in ("top 0.1%", "top 1%", "top 5%", "recall 0.5", "recall 0.8", "recall 0.9"):
        assert label in printed
