"""Data-quality guards on small hand-made frames, one per guard, plus date parsing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabops.schema import ColumnSpec, FeatureSpec, Kind, infer_schema
from tabops.training.guards import GuardFinding, check_data_quality, parse_dates

ROWS = 200


@pytest.fixture
def clean() -> pd.DataFrame:
    """Two noisy features, one category and a balanced target: nothing to report."""
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "x": rng.normal(size=ROWS),
            "count": rng.integers(0, 20, size=ROWS),
            "colour": rng.choice(["red", "green", "blue"], size=ROWS),
            "target": np.tile([0, 1], ROWS // 2),
        }
    )


def run(frame: pd.DataFrame, entity: str | None = None) -> list[GuardFinding]:
    spec = infer_schema(frame, "target").spec
    return check_data_quality(frame, spec, "target", frame["target"].to_numpy(), entity)


def found(findings: list[GuardFinding], guard: str) -> list[GuardFinding]:
    return [finding for finding in findings if finding.guard == guard]


def test_clean_table_gives_no_warning_or_error(clean):
    findings = run(clean)

    assert [f for f in findings if f.severity != "info"] == []


def test_probable_leak_flags_a_noise_free_copy_of_the_target(clean):
    frame = clean.assign(outcome_code=clean["target"] * 10 + 5.0)

    leaks = found(run(frame), "probable_leak")

    assert [leak.column for leak in leaks] == ["outcome_code"]
    assert leaks[0].severity == "warning"
    assert leaks[0].value == pytest.approx(1.0)


def test_probable_leak_flags_an_inverted_numeric_feature(clean):
    rng = np.random.default_rng(0)
    frame = clean.assign(days_left=np.where(clean["target"] == 1, 5.0, 50.0) + rng.random(ROWS))

    leaks = found(run(frame), "probable_leak")

    assert [leak.column for leak in leaks] == ["days_left"]


def test_probable_leak_ignores_missing_values_in_numeric_features(clean):
    leaky = (clean["target"] * 3.0).astype("float64")
    leaky[::3] = np.nan
    frame = clean.assign(leaky=leaky)

    assert [leak.column for leak in found(run(frame), "probable_leak")] == ["leaky"]


def test_probable_leak_flags_a_category_that_encodes_the_target(clean):
    frame = clean.assign(status=np.where(clean["target"] == 1, "closed", "open"))

    leaks = found(run(frame), "probable_leak")

    assert [leak.column for leak in leaks] == ["status"]
    assert leaks[0].value == pytest.approx(1.0)


def test_probable_leak_skips_a_column_left_with_one_class(clean):
    only_negatives = np.where(clean["target"] == 0, np.arange(ROWS, dtype="float64"), np.nan)
    frame = clean.assign(partial=only_negatives)

    assert found(run(frame), "probable_leak") == []


def test_excluded_id_column_is_a_warning_naming_its_reason(clean):
    frame = clean.assign(customer_id=[f"C{i:05d}" for i in range(ROWS)])

    excluded = found(run(frame), "excluded_column")

    assert len(excluded) == 1
    assert excluded[0].column == "customer_id"
    assert excluded[0].severity == "warning"
    assert "customer_id" in excluded[0].message
    assert "id-like" in excluded[0].message


def test_excluded_constant_column_is_only_information(clean):
    excluded = found(run(clean.assign(source="crm")), "excluded_column")

    assert [(f.column, f.severity) for f in excluded] == [("source", "info")]
    assert "constant" in excluded[0].message


def test_target_listed_as_feature_is_an_error(clean):
    spec = FeatureSpec(
        columns=[
            ColumnSpec(name="x", kind=Kind.NUMERIC),
            ColumnSpec(name="target", kind=Kind.BOOLEAN),
        ]
    )

    findings = check_data_quality(clean, spec, "target", clean["target"].to_numpy())

    errors = [f for f in findings if f.severity == "error"]
    assert [(f.guard, f.column) for f in errors] == [("target_in_features", "target")]
    assert found(findings, "probable_leak") == []


def test_date_column_with_year_3021_is_reported_with_its_latest_year(clean):
    dates = np.where(np.arange(ROWS) % 50 == 0, "3021-09-18", "2015-01-01")
    frame = clean.assign(job_start_date=dates)

    out_of_range = found(run(frame), "date_out_of_range")

    assert len(out_of_range) == 1
    finding = out_of_range[0]
    assert finding.column == "job_start_date"
    assert finding.value == 4
    assert "3021" in finding.message
    assert "outside 1900\N{EN DASH}2100 (latest year 3021)" in finding.message


def test_date_out_of_range_checks_real_datetime_columns_too(clean):
    dates = pd.Series(pd.Timestamp("2015-06-01"), index=clean.index).astype("datetime64[us]")
    dates.iloc[0] = pd.Timestamp("1850-01-01")
    frame = clean.assign(opened=dates)

    out_of_range = found(run(frame), "date_out_of_range")

    assert [(f.column, f.value) for f in out_of_range] == [("opened", 1.0)]
    assert "earliest year 1850" in out_of_range[0].message


def test_parse_dates_keeps_year_3021_as_out_of_range_not_lost():
    series = pd.Series(["3021-09-18", "2015-01-01", "1/1/15", None, "not a date", "1st"])

    result = parse_dates(series)

    assert result.values.dtype == "datetime64[ns]"
    assert result.years.tolist()[:3] == [3021.0, 2015.0, 2015.0]
    assert result.years.iloc[3:].isna().all()
    assert result.out_of_range.tolist() == [True, False, False, False, False, False]
    assert pd.isna(result.values.iloc[0])
    assert result.values.iloc[1] == pd.Timestamp("2015-01-01")
    assert result.values.iloc[2] == pd.Timestamp("2015-01-01")
    assert result.values.iloc[3:].isna().all()


def test_parse_dates_handles_datetime_columns_beyond_pandas_nanosecond_range():
    series = pd.Series(pd.to_datetime(["2015-01-01", "3021-09-18", None], format="ISO8601")).astype(
        "datetime64[us]"
    )

    result = parse_dates(series)

    assert result.values.dtype == "datetime64[ns]"
    assert result.years.tolist()[:2] == [2015.0, 3021.0]
    assert result.out_of_range.tolist() == [False, True, False]
    assert result.values.isna().tolist() == [False, True, True]


def test_parse_dates_keeps_the_index_of_its_input():
    series = pd.Series(["2015-01-01", "3021-09-18"], index=[10, 7])

    result = parse_dates(series)

    assert list(result.values.index) == [10, 7]
    assert list(result.out_of_range.index) == [10, 7]


def test_duplicate_rows_are_counted(clean):
    frame = pd.concat([clean, clean.iloc[:5]], ignore_index=True)

    duplicates = found(run(frame), "duplicate_rows")

    assert len(duplicates) == 1
    assert duplicates[0].value == 5
    assert duplicates[0].severity == "warning"


def test_duplicate_entities_count_entities_and_share_of_repeat_rows(clean):
    clients = np.arange(ROWS) // 4  # 50 clients with 4 rows each
    frame = clean.assign(client=clients)

    duplicates = found(run(frame, entity="client"), "duplicate_entities")

    assert len(duplicates) == 1
    assert duplicates[0].column == "client"
    assert duplicates[0].value == pytest.approx(0.75)
    assert "50 client values" in duplicates[0].message
    assert "keep_last" in duplicates[0].message


def test_unique_entities_give_no_finding(clean):
    frame = clean.assign(client=np.arange(ROWS))

    assert found(run(frame, entity="client"), "duplicate_entities") == []


def test_mostly_missing_feature_is_reported_with_its_share(clean):
    sparse = clean["x"].where(np.arange(ROWS) % 4 == 0)
    frame = clean.assign(sparse=sparse)

    missing = found(run(frame), "mostly_missing")

    assert [(f.column, f.severity) for f in missing] == [("sparse", "info")]
    assert missing[0].value == pytest.approx(0.75)


def test_check_data_quality_rejects_labels_of_another_length(clean):
    spec = infer_schema(clean, "target").spec

    with pytest.raises(ValueError, match="y has 3 values"):
        check_data_quality(clean, spec, "target", np.array([0, 1, 0]))


def test_parse_dates_reads_timezone_aware_values_as_naive_utc():
    series = pd.Series(pd.to_datetime(["2015-01-01T12:00:00+01:00"], format="ISO8601"))

    result = parse_dates(series)

    assert result.values.iloc[0] == pd.Timestamp("2015-01-01 11:00")
    assert not result.out_of_range.iloc[0]


def test_probable_leak_is_skipped_when_rows_hold_one_class(clean):
    spec = infer_schema(clean, "target").spec
    frame = clean.assign(target=1)

    findings = check_data_quality(frame, spec, "target", frame["target"].to_numpy())

    assert found(findings, "probable_leak") == []
