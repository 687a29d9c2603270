"""Leak guards through real training: a 97%-agreement column and a gapped copy of a feature.

Every run trains a real project on a seeded synthetic table, with fast settings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from tabops.config import Settings
from tabops.errors import TrainingError
from tabops.model.files import GOLDEN_FILE, GOLDEN_PROBABILITY, parquet_to_frame
from tabops.model.predictor import Predictor
from tabops.project import Project, TrainSettings
from tabops.registry import LocalArtifactStore, ModelRegistry
from tabops.schema import Role, infer_schema
from tabops.training.guards import GuardFinding
from tabops.training.register import TrainOutcome, train_project
from tabops.training.train import TrainingResult, train_model

ROWS = 500
FAST: dict[str, Any] = {
    "cv_folds": 2,
    "candidates": ["logistic_regression"],
    "search_settings": 1,
    "bootstrap_resamples": 0,
    "time_budget_s": 600,
}
LEFT_OUT = {"agrees", "signal_again"}


def table(seed: int = 0) -> pd.DataFrame:
    """Two signals, noise, a category; ``agrees`` is the target on 97% of rows and
    ``signal_again`` is ``signal`` with a third of its values missing."""
    rng = np.random.default_rng(seed)
    y = (rng.random(ROWS) < 0.4).astype(int)
    agrees = y.copy()
    flipped = rng.permutation(ROWS)[: round(ROWS * 0.03)]
    agrees[flipped] = 1 - agrees[flipped]
    signal = rng.normal(size=ROWS) + 1.0 * y
    return pd.DataFrame(
        {
            "signal": signal,
            "other": rng.normal(size=ROWS) + 0.5 * y,
            "noise": rng.normal(size=ROWS),
            "colour": rng.choice(["red", "green", "blue"], size=ROWS),
            "agrees": agrees,
            "signal_again": np.where(rng.random(ROWS) < 1 / 3, np.nan, signal),
            "y": y,
        }
    )


def make_project(frame: pd.DataFrame, **train: Any) -> Project:
    return Project(
        name="leaky",
        data="table.csv",
        target="y",
        positive_class=1,
        class_names={"0": "no", "1": "yes"},
        schema_=infer_schema(frame, "y").spec,
        train=TrainSettings(**(FAST | train)),
    )


def finding(result: TrainingResult, guard: str) -> GuardFinding:
    [only] = [f for f in result.guards if f.guard == guard]
    return only


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return table()


@pytest.fixture(scope="module")
def warned(frame: pd.DataFrame) -> TrainingResult:
    return train_model(make_project(frame), frame)


@pytest.fixture(scope="module")
def excluded(
    frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainOutcome, ModelRegistry]:
    folder = tmp_path_factory.mktemp("project")
    frame.to_csv(folder / "table.csv", index=False)
    home = tmp_path_factory.mktemp("home")
    registry = ModelRegistry(LocalArtifactStore(Settings(home=home).registry_path))
    outcome = train_project(make_project(frame, leak_action="exclude"), folder, registry)
    return outcome, registry


def test_the_agreeing_column_is_a_probable_leak_with_its_value(warned):
    leak = finding(warned, "probable_leak")

    assert (leak.column, leak.severity) == ("agrees", "warning")
    assert leak.value is not None
    assert 0.95 < leak.value < 0.99
    assert f"column 'agrees' alone separates the classes with ROC AUC {leak.value:.3f}" in (
        leak.message
    )


def test_the_gapped_copy_is_a_near_copy_of_its_source(warned):
    copy = finding(warned, "near_copy")

    assert (copy.column, copy.severity, copy.value) == ("signal_again", "warning", 1.0)
    assert "near copy of 'signal': equal on" in copy.message


def test_the_agreeing_column_also_dominates_the_model_trained_with_it(warned):
    dominant = finding(warned, "dominant_feature")

    assert (dominant.column, dominant.severity) == ("agrees", "warning")
    assert dominant.value is not None
    assert f"falls by {dominant.value:.3f}, more than without each of the other 4" in (
        dominant.message
    )


def test_warn_trains_on_the_leak_but_never_on_the_near_copy(warned):
    features = warned.project.schema_.feature_names

    assert "agrees" in features
    assert "signal_again" not in features
    assert warned.project.schema_.column("signal_again").reason is not None
    assert any(
        "column 'signal_again' left out of training (near copy of 'signal': equal on" in note
        for note in warned.notes
    )
    assert [name for name, _mean, _std in warned.importance] == features


def test_exclude_leaves_both_out_of_the_trained_project(excluded):
    outcome, _registry = excluded
    spec = outcome.result.project.schema_

    assert LEFT_OUT.isdisjoint(spec.feature_names)
    assert spec.feature_names == ["signal", "other", "noise", "colour"]
    for name in LEFT_OUT:
        assert spec.column(name).role is Role.EXCLUDED
    assert spec.column("agrees").reason.startswith(
        "probable leak: alone separates the classes with ROC AUC 0.9"
    )
    assert spec.column("signal_again").reason.startswith("near copy of 'signal'")
    assert {f.guard for f in outcome.result.guards} >= {"probable_leak", "near_copy"}


def test_exclude_stores_a_model_that_expects_only_the_features_it_was_trained_on(excluded):
    outcome, registry = excluded
    manifest = registry.get_version("leaky", outcome.version.version).manifest
    predictor = Predictor.load(registry, "leaky")

    trained = ["signal", "other", "noise", "colour"]
    assert manifest.feature_spec.feature_names == trained
    assert predictor.feature_names == trained
    assert predictor.parts is not None
    assert list(predictor.parts.encoder.features) == trained
    golden = parquet_to_frame(registry.read_file("leaky", outcome.version.version, GOLDEN_FILE))
    assert list(golden.columns) == [*trained, GOLDEN_PROBABILITY]
    assert LEFT_OUT.isdisjoint(predictor.examples.columns)


def test_fail_refuses_to_train_naming_the_column(frame):
    with pytest.raises(TrainingError, match=r"'agrees' \(ROC AUC 0\.9\d\d\)"):
        train_model(make_project(frame, leak_action="fail"), frame)


def test_fail_trains_when_only_a_near_copy_is_found(frame):
    clean = frame.drop(columns=["agrees"])

    result = train_model(make_project(clean, leak_action="fail"), clean)

    assert "signal_again" not in result.project.schema_.feature_names
