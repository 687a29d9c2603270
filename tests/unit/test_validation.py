"""Validating tables against the heart-failure feature spec and a small categorical spec."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabops.schema import FeatureSpec, infer_schema
from tabops.validation import ValidationFailure, validate_frame


@pytest.fixture
def spec(heart_project) -> FeatureSpec:
    return heart_project.schema_


def failures_for(failures: list[ValidationFailure], column: str) -> list[ValidationFailure]:
    return [failure for failure in failures if failure.column == column]


def test_validate_frame_heart_frame_is_valid(heart_frame, spec):
    report = validate_frame(heart_frame, spec, require_target=True)

    assert report.is_valid
    assert report.rows == 299
    assert report.failures == []
    assert report.unknown_columns == []


def test_validate_frame_reports_missing_feature_column(heart_frame, spec):
    report = validate_frame(heart_frame.drop(columns=["ejection_fraction"]), spec)

    assert not report.is_valid
    [failure] = report.failures
    assert failure.column == "ejection_fraction"
    assert "missing" in failure.check


def test_validate_frame_missing_target_fails_only_when_required(heart_frame, spec):
    without_target = heart_frame.drop(columns=["DEATH_EVENT"])

    assert validate_frame(without_target, spec).is_valid
    report = validate_frame(without_target, spec, require_target=True)
    assert [(f.column, "missing" in f.check) for f in report.failures] == [("DEATH_EVENT", True)]


def test_validate_frame_notes_out_of_range_values_without_failing(heart_frame, spec):
    frame = heart_frame.copy()
    frame.loc[[0, 10, 20], "age"] = 200.0

    report = validate_frame(frame, spec)

    assert report.is_valid
    [note] = [note for note in report.notes if note.column == "age"]
    assert "training range" in note.check
    assert note.failed_rows == 3
    assert note.examples == [200.0, 200.0, 200.0]


def test_validate_frame_reports_non_numeric_column(heart_frame, spec):
    frame = heart_frame.copy()
    frame["age"] = frame["age"].astype(object)
    frame.loc[3, "age"] = "old"

    report = validate_frame(frame, spec)

    assert not report.is_valid
    age = failures_for(report.failures, "age")
    assert any("number" in failure.check for failure in age)
    assert all(failure.failed_rows >= 1 for failure in age)


def test_validate_frame_non_numeric_report_shows_offending_value_not_python_error(
    heart_frame, spec
):
    frame = heart_frame.copy()
    frame["age"] = frame["age"].astype(object)
    frame.loc[3, "age"] = "old"

    report = validate_frame(frame, spec)

    examples = [example for f in failures_for(report.failures, "age") for example in f.examples]
    assert "old" in examples
    assert not any("Error" in str(example) for example in examples), examples


def test_validate_frame_reports_null_in_non_nullable_column(heart_frame, spec):
    frame = heart_frame.copy()
    frame["serum_sodium"] = frame["serum_sodium"].astype(float)
    frame.loc[[4, 5], "serum_sodium"] = np.nan

    report = validate_frame(frame, spec)

    [failure] = failures_for(report.failures, "serum_sodium")
    assert "null" in failure.check
    assert failure.failed_rows == 2


def test_validate_frame_reports_non_boolean_value_in_boolean_column(heart_frame, spec):
    frame = heart_frame.copy()
    frame.loc[[1, 2], "smoking"] = 2

    report = validate_frame(frame, spec)

    [failure] = failures_for(report.failures, "smoking")
    assert failure.failed_rows == 2
    assert failure.examples == [2, 2]


def test_validate_frame_collects_every_failure_at_once(heart_frame, spec):
    frame = heart_frame.drop(columns=["time"])
    frame["ejection_fraction"] = frame["ejection_fraction"].astype(float)
    frame.loc[0, "ejection_fraction"] = 20.5
    frame["serum_creatinine"] = frame["serum_creatinine"].astype(object)
    frame.loc[1, "serum_creatinine"] = "high"

    report = validate_frame(frame, spec)

    assert {f.column for f in report.failures} == {"time", "ejection_fraction", "serum_creatinine"}


def test_validate_frame_lists_unknown_columns_without_failing(heart_frame, spec):
    frame = heart_frame.assign(patient_id=range(len(heart_frame)), ward="B")

    report = validate_frame(frame, spec)

    assert report.is_valid
    assert report.unknown_columns == ["patient_id", "ward"]


@pytest.fixture
def colour_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = 60
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "colour": rng.choice(["red", "blue"], size=rows),
            "target": np.tile([0, 1], rows // 2),
        }
    )


def test_validate_frame_notes_an_unseen_category_without_failing(colour_frame):
    spec = infer_schema(colour_frame, "target").spec
    frame = colour_frame.copy()
    frame.loc[[3, 7], "colour"] = "purple"

    report = validate_frame(frame, spec)

    assert report.is_valid
    [note] = report.notes
    assert note.column == "colour"
    assert note.failed_rows == 2
    assert note.examples == ["purple", "purple"]


def test_validate_frame_reports_null_in_non_nullable_category(colour_frame):
    spec = infer_schema(colour_frame, "target").spec
    frame = colour_frame.copy()
    frame.loc[5, "colour"] = np.nan

    report = validate_frame(frame, spec)

    [failure] = report.failures
    assert failure.column == "colour"
    assert "null" in failure.check
    assert failure.failed_rows == 1


def test_validate_frame_accepts_nulls_in_nullable_column(colour_frame):
    frame = colour_frame.copy()
    frame.loc[[1, 2], "x"] = np.nan
    spec = infer_schema(frame, "target").spec

    assert spec.column("x").nullable
    assert validate_frame(frame, spec).is_valid
