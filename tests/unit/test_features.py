"""Derived features on small hand-made frames: window aggregates, row features, validation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tabops.errors import DataError
from tabops.features import FeatureDefinitions, compute_features

NAN = math.nan


def define(windows: list[dict] | None = None, rows: list[dict] | None = None):
    return FeatureDefinitions.model_validate({"windows": windows or [], "rows": rows or []})


def values(frame: pd.DataFrame, name: str) -> list[float]:
    return frame[name].astype(float).tolist()


def assert_values(frame: pd.DataFrame, name: str, expected: list[float]) -> None:
    np.testing.assert_array_equal(frame[name].to_numpy(dtype=float), np.array(expected))


@pytest.fixture
def loans() -> pd.DataFrame:
    """Two customers; customer a has two loans on the same day."""
    return pd.DataFrame(
        {
            "customer": ["a", "a", "b", "a", "a"],
            "loan_date": ["2024-01-01", "2024-01-05", "2024-01-05", "2024-01-05", "2024-01-09"],
            "amount": [100.0, 200.0, 50.0, 300.0, 400.0],
        }
    )


def test_window_aggregates_exclude_rows_sharing_the_timestamp(loans):
    definitions = define(
        windows=[
            {"name": "nb_previous", "function": "count"},
            {"name": "amount_sum", "function": "sum", "column": "amount"},
            {"name": "amount_last", "function": "last", "column": "amount"},
        ]
    )

    features = compute_features(loans, definitions, "customer", "loan_date")

    assert_values(features, "nb_previous", [0, 1, 0, 1, 3])
    assert_values(features, "amount_sum", [0, 100, 0, 100, 600])
    # among the two loans of 2024-01-05, the later row in the table is the last one
    assert_values(features, "amount_last", [NAN, 100, NAN, 100, 300])


def test_window_of_30_days_excludes_older_rows_and_keeps_the_boundary():
    frame = pd.DataFrame(
        {
            "customer": ["a", "a", "a", "a"],
            "loan_date": pd.to_datetime(["2024-01-01", "2024-01-11", "2024-02-10", "2024-02-15"]),
            "amount": [1.0, 2.0, 4.0, 8.0],
        }
    )
    definitions = define(
        windows=[
            {"name": "nb_30d", "function": "count", "window": "30d"},
            {"name": "max_30d", "function": "max", "column": "amount", "window": "30d"},
            {"name": "first_30d", "function": "first", "column": "amount", "window": "30d"},
            {"name": "nb_all", "function": "count"},
        ]
    )

    features = compute_features(frame, definitions, "customer", "loan_date")

    # 2024-02-10 minus 30 days is 2024-01-11, which is in; 2024-01-01 is out
    assert_values(features, "nb_30d", [0, 1, 1, 1])
    assert_values(features, "max_30d", [NAN, 1, 2, 4])
    assert_values(features, "first_30d", [NAN, 1, 2, 4])
    assert_values(features, "nb_all", [0, 1, 2, 3])


@pytest.mark.parametrize(
    ("window", "span"),
    [
        ("30d", pd.Timedelta(days=30)),
        ("7D", pd.Timedelta(days=7)),
        ("12h", pd.Timedelta(hours=12)),
        ("2w", pd.Timedelta(weeks=2)),
        ("90min", pd.Timedelta(minutes=90)),
    ],
)
def test_window_written_as_documented_is_accepted_without_warning(window, span):
    # pandas 3.1 deprecates pd.Timedelta("30d") with a warning, which pytest turns into an error
    definitions = define(windows=[{"name": "n", "function": "count", "window": window}])

    assert definitions.windows[0].span == span


def test_years_between_whole_gives_the_age_at_the_loan_date():
    frame = pd.DataFrame(
        {
            "birthday": ["1990-06-15", "1990-06-15", "1990-06-15", None],
            "loan_date": ["2020-06-14", "2020-06-16", "2021-01-01", "2021-01-01"],
        }
    )
    definitions = define(
        rows=[
            {
                "name": "age",
                "kind": "years_between",
                "start": "birthday",
                "end": "loan_date",
                "whole": True,
            }
        ]
    )

    features = compute_features(frame, definitions, None, None)

    assert_values(features, "age", [29, 30, 30, NAN])


def test_years_between_whole_counts_the_birthday_itself_as_a_full_year():
    frame = pd.DataFrame(
        {"birthday": ["2001-01-01", "2001-01-01"], "loan_date": ["2004-01-01", "2031-01-01"]}
    )
    definitions = define(
        rows=[
            {
                "name": "age",
                "kind": "years_between",
                "start": "birthday",
                "end": "loan_date",
                "whole": True,
            }
        ]
    )

    features = compute_features(frame, definitions, None, None)

    assert_values(features, "age", [3, 30])


def test_years_between_with_min_zero_turns_a_job_start_in_3021_into_a_missing_value():
    frame = pd.DataFrame(
        {
            "job_start_date": ["3021-09-18", "2015-06-16", None],
            "loan_date": ["2020-06-16", "2020-06-16", "2020-06-16"],
        }
    )
    between = {"kind": "years_between", "start": "job_start_date", "end": "loan_date"}
    definitions = define(
        rows=[
            {"name": "years_on_the_job", **between, "min": 0, "max": 80},
            {"name": "years_on_the_job_raw", **between},
        ]
    )

    features = compute_features(frame, definitions, None, None)

    on_the_job = values(features, "years_on_the_job")
    assert math.isnan(on_the_job[0])
    assert on_the_job[1] == pytest.approx(5.0, abs=0.01)
    assert math.isnan(on_the_job[2])
    # the year 3021 is parsed as a real date (about -1001 years), not an overflow or NaT
    assert values(features, "years_on_the_job_raw")[0] == pytest.approx(-1001.26, abs=0.01)


def test_days_between_first_seen_and_the_timestamp_counts_days_since_first_seen(loans):
    definitions = define(
        windows=[{"name": "first_seen", "function": "first", "column": "loan_date"}],
        rows=[
            {
                "name": "days_since_first_seen",
                "kind": "days_between",
                "start": "first_seen",
                "end": "loan_date",
            }
        ],
    )

    features = compute_features(loans, definitions, "customer", "loan_date")

    assert_values(features, "days_since_first_seen", [NAN, 4, NAN, 4, 8])


def test_difference_with_the_window_last_gives_the_change_since_the_previous_row(loans):
    definitions = define(
        windows=[{"name": "previous_amount", "function": "last", "column": "amount"}],
        rows=[
            {
                "name": "amount_change",
                "kind": "difference",
                "left": "amount",
                "right": "previous_amount",
            }
        ],
    )

    features = compute_features(loans, definitions, "customer", "loan_date")

    assert_values(features, "amount_change", [NAN, 100, NAN, 200, 100])


def test_ratio_is_missing_when_the_denominator_is_zero_or_missing():
    frame = pd.DataFrame({"debt": [50.0, 10.0, 7.0, -3.0], "income": [100.0, 0.0, None, 2.0]})
    definitions = define(
        rows=[{"name": "debt_ratio", "kind": "ratio", "numerator": "debt", "denominator": "income"}]
    )

    features = compute_features(frame, definitions, None, None)

    assert_values(features, "debt_ratio", [0.5, NAN, NAN, -1.5])


def test_flag_with_true_values_keeps_missing_values_missing():
    frame = pd.DataFrame({"flag_own_car": ["Y", "N", None, "y"]})
    definitions = define(
        rows=[{"name": "own_car", "kind": "flag", "column": "flag_own_car", "true_values": ["Y"]}]
    )

    features = compute_features(frame, definitions, None, None)

    assert_values(features, "own_car", [1, 0, NAN, 0])


def test_flag_may_replace_the_raw_column_it_reads():
    frame = pd.DataFrame({"flag_own_car": ["Y", "N", None]})
    definitions = define(
        rows=[
            {"name": "flag_own_car", "kind": "flag", "column": "flag_own_car", "true_values": ["Y"]}
        ]
    )

    features = compute_features(frame, definitions, None, None)

    assert list(features.columns) == ["flag_own_car"]
    assert_values(features, "flag_own_car", [1, 0, NAN])


def test_is_missing_is_one_exactly_where_the_column_is_missing():
    frame = pd.DataFrame({"income": [1.0, None, NAN, 0.0], "name": ["x", None, "y", ""]})
    definitions = define(
        rows=[
            {"name": "income_missing", "kind": "is_missing", "column": "income"},
            {"name": "name_missing", "kind": "is_missing", "column": "name"},
        ]
    )

    features = compute_features(frame, definitions, None, None)

    assert_values(features, "income_missing", [0, 1, 1, 0])
    assert_values(features, "name_missing", [0, 1, 0, 0])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {
                "rows": [
                    {"name": "change", "kind": "difference", "left": "amount", "right": "ratio"},
                    {"name": "ratio", "kind": "ratio", "numerator": "a", "denominator": "b"},
                ]
            },
            "defined after",
        ),
        (
            {
                "windows": [{"name": "n", "function": "count"}],
                "rows": [{"name": "n", "kind": "is_missing", "column": "x"}],
            },
            "defined twice",
        ),
        ({"windows": [{"name": "avg", "function": "mean"}]}, "mean needs a column"),
        (
            {"windows": [{"name": "n", "function": "count", "window": "soon"}]},
            "is not a duration",
        ),
        ({"windows": [{"name": "n", "function": "count", "window": "0h"}]}, "must be positive"),
    ],
    ids=["reads-later-feature", "duplicate-name", "mean-without-column", "bad-window", "zero"],
)
def test_feature_definitions_refuse_invalid_documents(document, message):
    with pytest.raises(ValidationError, match=message):
        FeatureDefinitions.model_validate(document)


def test_compute_features_raises_data_error_naming_a_missing_window_column(loans):
    definitions = define(windows=[{"name": "m", "function": "max", "column": "income"}])

    with pytest.raises(DataError, match="'income'") as raised:
        compute_features(loans, definitions, "customer", "loan_date")

    assert [problem.field for problem in raised.value.problems] == ["income"]


def test_compute_features_raises_data_error_naming_a_missing_row_column(loans):
    definitions = define(
        rows=[{"name": "r", "kind": "ratio", "numerator": "amount", "denominator": "income"}]
    )

    with pytest.raises(DataError, match="'income'") as raised:
        compute_features(loans, definitions, "customer", "loan_date")

    assert [problem.field for problem in raised.value.problems] == ["income"]


@pytest.mark.parametrize(("entity", "timestamp"), [(None, "loan_date"), ("customer", None)])
def test_compute_features_refuses_window_features_without_entity_or_timestamp(
    loans, entity, timestamp
):
    definitions = define(windows=[{"name": "n", "function": "count"}])

    with pytest.raises(DataError, match="entity and timestamp"):
        compute_features(loans, definitions, entity, timestamp)


def test_compute_features_recomputes_input_columns_named_like_derived_features(loans):
    stale = loans.assign(nb_previous=99.0, amount_missing=99.0)
    definitions = define(
        windows=[{"name": "nb_previous", "function": "count"}],
        rows=[{"name": "amount_missing", "kind": "is_missing", "column": "amount"}],
    )

    features = compute_features(stale, definitions, "customer", "loan_date")

    assert features.columns.is_unique
    assert set(features.columns) == {*loans.columns, "nb_previous", "amount_missing"}
    assert_values(features, "nb_previous", [0, 1, 0, 1, 3])
    assert_values(features, "amount_missing", [0, 0, 0, 0, 0])


def test_compute_features_keeps_the_original_row_order_and_index():
    frame = pd.DataFrame(
        {
            "customer": ["a", "b", "a", "a"],
            "loan_date": ["2024-03-01", "2024-01-01", "2024-01-01", "2024-02-01"],
            "amount": [3.0, 10.0, 1.0, 2.0],
        },
        index=pd.Index([40, 7, 7, 12], name="loan_id"),
    )
    definitions = define(windows=[{"name": "amount_sum", "function": "sum", "column": "amount"}])

    features = compute_features(frame, definitions, "customer", "loan_date")

    pd.testing.assert_index_equal(features.index, frame.index)
    pd.testing.assert_frame_equal(features[frame.columns], frame)
    assert_values(features, "amount_sum", [3, 0, 0, 1])


def test_days_between_parses_mixed_format_date_strings_without_warning():
    # '1/1/15' defeats the ISO parser, so the whole column goes through the per-value
    # parser, whose warnings the code silences (pytest turns warnings into errors)
    frame = pd.DataFrame(
        {
            "opened": ["1/1/15", "2015-03-01", "13/01/2015", None],
            "closed": ["2015-01-31", "2015-03-11", "2015-01-31", "2015-01-31"],
        }
    )
    definitions = define(
        rows=[{"name": "days_open", "kind": "days_between", "start": "opened", "end": "closed"}]
    )

    features = compute_features(frame, definitions, None, None)

    assert_values(features, "days_open", [30, 10, 18, NAN])
