"""``read_table`` + ``infer_schema`` on every real dataset in the shared folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import DATASETS
from tabops.cli.main import app
from tabops.dataset import read_table
from tabops.errors import DataError
from tabops.project import load_project, resolve_data_path
from tabops.schema import Kind, Role, SchemaInference, coerce_frame, infer_schema
from tabops.validation import validate_frame

HEART = "heart_failure_clinical_records_dataset.csv"
DEVICE = "device_failure.csv.gz"
CREDIT_SAMPLE = "creditcard_sample_2pct.csv.gz"
CREDIT_UNDERSAMPLED = "creditcard_fraud_undersampled.csv.gz"
KUESKI_CSV = "kueski_features_by_client.csv.gz"
KUESKI_DB = "kueski_feature_store_online.db"

# file, target, read options, rows, features
CASES: list[tuple[str, str, dict[str, Any], int, int]] = [
    (HEART, "DEATH_EVENT", {}, 299, 12),
    (DEVICE, "failure", {}, 124_494, 8),
    (CREDIT_SAMPLE, "Class", {}, 5_696, 30),
    (CREDIT_UNDERSAMPLED, "Class", {"index_col": 0}, 1_722, 30),
    (KUESKI_CSV, "status", {}, 36_457, 5),
    (KUESKI_DB, "status", {}, 36_457, 5),
]

_FRAMES: dict[tuple[str, str], pd.DataFrame] = {}


def dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.is_file():
        pytest.skip(f"dataset {name} not found at {path}")
    return path


def load(name: str, options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Read a dataset once per session (the frames are not modified by the tests)."""
    key = (name, repr(options))
    if key not in _FRAMES:
        _FRAMES[key] = read_table(dataset(name), options)
    return _FRAMES[key]


def infer(name: str, target: str, options: dict[str, Any] | None = None) -> SchemaInference:
    return infer_schema(load(name, options), target)


@pytest.mark.parametrize(
    ("name", "target", "options", "rows", "features"), CASES, ids=[c[0] for c in CASES]
)
def test_read_table_and_infer_schema_work_on_every_dataset(name, target, options, rows, features):
    frame = load(name, options)

    inference = infer_schema(frame, target)

    assert len(frame) == rows
    assert inference.spec.column(target).role is Role.TARGET
    assert len(inference.spec.features) == features
    assert target not in inference.spec.feature_names


@pytest.mark.parametrize(
    ("name", "target", "options", "rows", "features"), CASES, ids=[c[0] for c in CASES]
)
def test_every_dataset_matches_its_own_inferred_spec(name, target, options, rows, features):
    frame = load(name, options)
    spec = infer_schema(frame, target).spec

    report = validate_frame(frame, spec, require_target=True)
    coerced = coerce_frame(frame, spec)

    assert report.is_valid, report.failures
    assert report.unknown_columns == []
    assert coerced.shape == (rows, features)


def test_heart_dataset_has_no_excluded_column():
    inference = infer(HEART, "DEATH_EVENT")

    assert inference.warnings == []
    assert not [c for c in inference.spec.columns if c.role is Role.EXCLUDED]


def test_device_failure_date_is_excluded_as_datetime():
    spec = infer(DEVICE, "failure").spec.column("date")

    assert spec.kind is Kind.DATETIME
    assert spec.role is Role.EXCLUDED


def test_device_failure_device_key_is_excluded():
    spec = infer(DEVICE, "failure").spec.column("device")

    assert spec.role is Role.EXCLUDED
    assert spec.reason


def test_device_failure_identical_attribute7_and_8_keep_only_one():
    spec = infer(DEVICE, "failure").spec
    seven, eight = spec.column("attribute7"), spec.column("attribute8")

    assert {seven.role, eight.role} == {Role.FEATURE, Role.EXCLUDED}
    excluded, kept = (seven, eight) if seven.role is Role.EXCLUDED else (eight, seven)
    assert f"'{kept.name}'" in (excluded.reason or "")
    assert "copy" in (excluded.reason or "")


def test_device_failure_warns_about_each_excluded_column():
    warnings = " ".join(infer(DEVICE, "failure").warnings)

    for name in ("'date'", "'device'", "'attribute8'"):
        assert name in warnings


def test_creditcard_undersampled_with_index_col_has_no_unnamed_column():
    inference = infer(CREDIT_UNDERSAMPLED, "Class", {"index_col": 0})

    assert inference.warnings == []
    assert inference.spec.feature_names[0] == "Time"
    assert not [c for c in inference.spec.columns if c.name.startswith("Unnamed")]


def test_creditcard_undersampled_without_index_col_flags_unnamed_index_as_id_like():
    inference = infer(CREDIT_UNDERSAMPLED, "Class")

    spec = inference.spec.column("Unnamed: 0")
    assert spec.role is Role.EXCLUDED
    assert "id-like" in (spec.reason or "")
    assert len(inference.spec.features) == 30


def test_creditcard_sample_features_are_numeric():
    spec = infer(CREDIT_SAMPLE, "Class").spec

    assert {c.kind for c in spec.features} <= {Kind.NUMERIC, Kind.INTEGER}
    assert spec.column("Amount").minimum is not None


@pytest.mark.parametrize("name", [KUESKI_CSV, KUESKI_DB])
def test_kueski_id_is_excluded_as_id_like_and_gaps_are_nullable(name):
    spec = infer(name, "status").spec

    assert spec.column("id").role is Role.EXCLUDED
    assert "id-like" in (spec.column("id").reason or "")
    assert spec.column("years_on_the_job").nullable
    assert spec.column("avg_amount_loans_previous").nullable
    assert spec.column("flag_own_car").kind is Kind.BOOLEAN


def test_kueski_sqlite_and_csv_export_infer_the_same_spec():
    from_db = infer(KUESKI_DB, "status").spec
    from_csv = infer(KUESKI_CSV, "status").spec

    assert from_db == from_csv


def test_read_table_sqlite_unknown_table_raises_data_error():
    with pytest.raises(DataError, match="no table 'loans'"):
        read_table(dataset(KUESKI_DB), {"table": "loans"})


def test_read_table_sqlite_named_table_reads_it():
    frame = read_table(dataset(KUESKI_DB), {"table": "features_table"})

    assert list(frame.columns)[-1] == "status"
    assert len(frame) == 36_457


def test_read_table_missing_file_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="no data file"):
        read_table(tmp_path / "absent.csv")


def test_read_table_unknown_suffix_raises_data_error(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"not a table")

    with pytest.raises(DataError, match="unknown table format"):
        read_table(path)


def test_cli_init_on_kueski_sqlite_writes_a_loadable_project(tmp_path):
    source = dataset(KUESKI_DB)
    output = tmp_path / "kueski" / "tabops.yaml"
    output.parent.mkdir()

    result = CliRunner().invoke(app, ["init", str(source), "--target", "status", "-o", str(output)])

    assert result.exit_code == 0, result.output
    assert "'id' excluded" in result.output
    project, folder = load_project(output)
    assert project.name == "kueski-feature-store-online"
    assert project.target == "status"
    assert project.positive_class == 1
    assert resolve_data_path(project, folder).resolve() == source.resolve()
    assert project.schema_.column("id").role is Role.EXCLUDED
    frame = read_table(resolve_data_path(project, folder), project.read_options)
    assert validate_frame(frame, project.schema_, require_target=True).is_valid
