"""Calendar periods of a backtest: boundaries, UTC, order, gaps, and too few periods."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tabops.errors import DataError, ProjectError
from tabops.monitoring.backtest import run_backtest
from tabops.monitoring.periods import PeriodLength, split_periods
from tabops.project import load_project


def labelled(times: list[object], by: PeriodLength) -> dict[str, list[int]]:
    """Period label -> row positions, in the order the split gives them."""
    split = split_periods(pd.Series(times), by)
    return {period.label: period.positions.tolist() for period in split.periods}


def test_month_boundaries_fall_on_the_first_of_the_month():
    times = ["2020-01-31T23:59:59", "2020-02-01T00:00:00", "2020-02-29T12:00:00", "2020-03-01"]

    assert labelled(times, "month") == {"2020-01": [0], "2020-02": [1, 2], "2020-03": [3]}


def test_month_period_bounds_are_utc_start_inclusive_end_exclusive():
    period = split_periods(pd.Series(["2020-12-15"]), "month").periods[0]

    assert period.start == datetime(2020, 12, 1, tzinfo=UTC)
    assert period.end == datetime(2021, 1, 1, tzinfo=UTC)


def test_quarter_boundaries_and_labels():
    times = ["2020-03-31T23:59:59", "2020-04-01", "2020-12-31", "2021-01-01"]

    split = split_periods(pd.Series(times), "quarter")

    assert [p.label for p in split.periods] == ["2020-Q1", "2020-Q2", "2020-Q4", "2021-Q1"]
    assert split.periods[1].start == datetime(2020, 4, 1, tzinfo=UTC)
    assert split.periods[1].end == datetime(2020, 7, 1, tzinfo=UTC)


def test_weeks_run_monday_to_sunday_with_iso_labels():
    # 2019-12-30 is the Monday of ISO week 2020-W01; 2020-01-05 its Sunday.
    times = ["2019-12-29", "2019-12-30", "2020-01-05T23:59", "2020-01-06"]

    split = split_periods(pd.Series(times), "week")

    assert {p.label: p.positions.tolist() for p in split.periods} == {
        "2019-W52": [0],
        "2020-W01": [1, 2],
        "2020-W02": [3],
    }
    assert split.periods[1].start == datetime(2019, 12, 30, tzinfo=UTC)
    assert split.periods[1].end == datetime(2020, 1, 6, tzinfo=UTC)


def test_aware_times_are_placed_by_their_utc_time():
    # 23:30 at UTC-2 on 31 January is already February in UTC; 00:30 at UTC+2 still January.
    times = ["2020-01-31T23:30:00-02:00", "2020-02-01T00:30:00+02:00"]

    assert labelled(times, "month") == {"2020-01": [1], "2020-02": [0]}


def test_timezone_aware_datetime_column_is_read_in_utc():
    times = pd.Series(pd.to_datetime(["2020-04-01T01:00"]).tz_localize("Asia/Tokyo"))

    assert [p.label for p in split_periods(times, "quarter").periods] == ["2020-Q1"]


def test_unsorted_rows_are_grouped_and_periods_come_in_time_order():
    times = ["2020-03-05", "2020-01-10", "2020-03-01", "2020-01-02", "2020-02-20"]

    assert labelled(times, "month") == {"2020-01": [1, 3], "2020-02": [4], "2020-03": [0, 2]}
    assert list(labelled(times, "month")) == ["2020-01", "2020-02", "2020-03"]


def test_periods_without_rows_are_skipped():
    times = ["2020-01-15", "2020-05-15"]

    assert list(labelled(times, "month")) == ["2020-01", "2020-05"]


def test_missing_and_unreadable_times_are_counted_as_undated():
    split = split_periods(pd.Series(["2020-01-15", None, "not a date", "3021-01-01"]), "month")

    assert [p.positions.tolist() for p in split.periods] == [[0]]
    assert split.undated == 3


def test_no_dated_row_gives_no_period():
    split = split_periods(pd.Series([None, "soon"], dtype=object), "week")

    assert split.periods == []
    assert split.undated == 2


def write_project(folder: Path, dates: list[str], **changes: object) -> Path:
    """A three-column project over ``dates``, target alternating 0/1."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {"when": dates, "x": range(len(dates)), "y": [i % 2 for i in range(len(dates))]}
    )
    frame.to_csv(folder / "data.csv", index=False)
    document = {
        "name": "tiny",
        "data": "data.csv",
        "target": "y",
        "timestamp": "when",
        "positive_class": 1,
        "class_names": {"0": "no", "1": "yes"},
        "schema": {
            "columns": [
                {"name": "when", "role": "excluded", "kind": "datetime", "reason": "time"},
                {"name": "x", "kind": "numeric"},
                {"name": "y", "role": "target", "kind": "boolean"},
            ]
        },
        **changes,
    }
    (folder / "tabops.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return folder


def test_fewer_periods_than_training_needs_is_a_clear_error(tmp_path):
    dates = ["2020-01-05", "2020-01-20", "2020-02-03", "2020-02-17", "2020-03-02", "2020-03-30"]
    project, folder = load_project(write_project(tmp_path / "p", dates))

    with pytest.raises(DataError, match=r"span 3 month\(s\).*training on 3") as caught:
        run_backtest(project, folder, "month", train_periods=3)

    assert caught.value.problems[0].field == "train_periods"


def test_project_without_timestamp_is_refused_naming_it(tmp_path):
    folder = write_project(tmp_path / "p", ["2020-01-05", "2020-02-05"])
    document = yaml.safe_load((folder / "tabops.yaml").read_text())
    del document["timestamp"]
    (folder / "tabops.yaml").write_text(yaml.safe_dump(document))
    project, folder = load_project(folder)

    with pytest.raises(ProjectError, match="no timestamp column") as caught:
        run_backtest(project, folder, "month")

    assert caught.value.problems[0].field == "timestamp"


def test_table_without_a_readable_time_is_refused_naming_the_column(tmp_path):
    project, folder = load_project(write_project(tmp_path / "p", ["soon", "later", "never"]))

    with pytest.raises(DataError, match="readable time") as caught:
        run_backtest(project, folder, "week")

    assert caught.value.problems[0].field == "when"
