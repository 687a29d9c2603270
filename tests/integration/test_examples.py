"""The example projects: each loads, reads its data and matches it; the seeds' requests fit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from example_files import example_data_path
from tabops.project import load_project, read_project_table
from tabops.server.schemas import build_record_model
from tabops.validation import validate_frame

EXAMPLES = sorted(path.parent for path in (REPO / "examples").glob("*/tabops.yaml"))

# The request of the device-failure seed document, byte for byte.
DEVICE_SEED_REQUEST = """{
  "metric1": 215630672,
  "metric2": 56,
  "metric3": 0,
  "metric4": 52,
  "metric5": 6,
  "metric6": 407438,
  "metric7": 0,
  "metric9": 7
}"""


def test_there_are_seven_examples():
    assert [path.name for path in EXAMPLES] == [
        "credit-card-fraud",
        "credit-risk",
        "credit-risk-loans",
        "device-failure",
        "device-failure-windows",
        "heart-failure",
        "heart-failure-no-time",
    ]


def test_the_credit_risk_loans_example_defines_the_five_seed_features():
    project, _folder = load_project(REPO / "examples" / "credit-risk-loans")
    assert project.schema_.feature_names == [
        "nb_previous_loans",
        "avg_amount_loans_previous",
        "age",
        "years_on_the_job",
        "flag_own_car",
    ]
    assert project.features is not None
    assert project.features.raw_inputs() == [
        "loan_amount",
        "birthday",
        "loan_date",
        "job_start_date",
        "flag_own_car",
    ]


@pytest.mark.parametrize("folder", EXAMPLES, ids=lambda path: path.name)
def test_example_data_matches_its_feature_spec(folder: Path):
    project, project_dir = load_project(folder)
    path = example_data_path(project, project_dir)
    if not path.is_file():
        pytest.skip(f"{project.name}: data not found at {path}")

    report = validate_frame(read_project_table(project, path), project.schema_, require_target=True)

    assert report.is_valid, report.failures


def test_device_failure_model_takes_exactly_the_seed_request():
    project, _folder = load_project(REPO / "examples" / "device-failure")
    record_model = build_record_model(project.name, project.schema_)

    record = record_model.model_validate(json.loads(DEVICE_SEED_REQUEST))

    assert project.schema_.feature_names == [f"metric{i}" for i in (1, 2, 3, 4, 5, 6, 7, 9)]
    assert project.schema_.column("metric8").reason == "an exact copy of column 'metric7'"
    assert record.model_dump()["metric1"] == 215630672


def test_heart_failure_without_time_excludes_only_time():
    with_time, _ = load_project(REPO / "examples" / "heart-failure")
    without, _ = load_project(REPO / "examples" / "heart-failure-no-time")

    assert set(with_time.schema_.feature_names) - set(without.schema_.feature_names) == {"time"}


@pytest.mark.slow
def test_the_five_seed_features_are_computed_point_in_time_from_generated_loans(tmp_path):
    generator = REPO / "examples" / "credit-risk-loans" / "make_loans.py"
    data = tmp_path / "loans.parquet"
    subprocess.run(
        [sys.executable, str(generator), "--rows", "20000", "--output", str(data)],
        check=True,
        capture_output=True,
    )
    project, _folder = load_project(REPO / "examples" / "credit-risk-loans")
    table = read_project_table(project, data)

    assert validate_frame(table, project.schema_, require_target=True).is_valid
    raw = pd.read_parquet(data)
    pensioners = raw["job_start_date"].str.startswith("3021").fillna(False).to_numpy()
    assert pensioners.any()
    assert table.loc[pensioners, "years_on_the_job"].isna().all()
    client = raw["id"].value_counts().index[0]
    loans = table[table["id"] == client].sort_values("loan_date")
    for _, loan in loans.iterrows():
        earlier = loans[loans["loan_date"] < loan["loan_date"]]
        assert loan["nb_previous_loans"] == len(earlier)
        if earlier["loan_amount"].notna().any():
            assert loan["avg_amount_loans_previous"] == pytest.approx(earlier["loan_amount"].mean())
    assert set(table["flag_own_car"].dropna().unique()) <= {0.0, 1.0}
