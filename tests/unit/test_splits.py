"""Splits and row preparation on small crafted tables: stratified, time, group, de-duplication."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from tabops.errors import TrainingError
from tabops.project import Project, TrainSettings
from tabops.schema import Role, infer_schema
from tabops.training.splits import RowSplit, cv_splitter, prepare_rows, split_rows

ROWS = 300


def table(rows: int = ROWS, seed: int = 0, positive_share: float = 0.3) -> pd.DataFrame:
    """An informative feature, a noise feature, a category and a 0/1 target ``y``."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < positive_share).astype(int)
    return pd.DataFrame(
        {
            "signal": rng.normal(size=rows) + 1.5 * y,
            "noise": rng.normal(size=rows),
            "colour": rng.choice(["red", "green", "blue"], size=rows),
            "y": y,
        }
    )


def dated(frame: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """The table with a ``when`` column of ISO dates, one day apart, in shuffled file order."""
    days = pd.date_range("2020-01-01", periods=len(frame), freq="D")
    order = np.random.default_rng(seed).permutation(len(frame))
    return frame.assign(when=pd.Series(days[order].strftime("%Y-%m-%d"), dtype=object))


def make_project(
    frame: pd.DataFrame, *, entity: str | None = None, timestamp: str | None = None, **train: Any
) -> Project:
    """A project over ``frame``; entity and timestamp columns are kept out of the features."""
    spec = infer_schema(frame, "y").spec
    for name in (entity, timestamp):
        if name is not None and name in spec.feature_names:
            column = spec.column(name)
            column.role = Role.EXCLUDED
            column.reason = "a role column, not a feature"
    return Project(
        name="demo",
        data="x.csv",
        target="y",
        positive_class=1,
        class_names={"0": "no", "1": "yes"},
        schema_=spec,
        entity=entity,
        timestamp=timestamp,
        train=TrainSettings(**train),
    )


def split(frame: pd.DataFrame, project: Project) -> RowSplit:
    return split_rows(frame, frame["y"].to_numpy(dtype=int), project)


def sets(result: RowSplit) -> dict[str, np.ndarray]:
    return {"train": result.train, "validation": result.validation, "test": result.test}


def placement(result: RowSplit, rows: list[int]) -> dict[int, str | None]:
    """The set each row landed in, None when it was left out."""
    where = {int(row): name for name, positions in sets(result).items() for row in positions}
    return {row: where.get(row) for row in rows}


# stratified ------------------------------------------------------------------------------


def test_stratified_split_sets_are_disjoint_and_cover_every_row():
    frame = table()

    result = split(frame, make_project(frame))

    together = np.concatenate(list(sets(result).values()))
    assert len(together) == len(set(together.tolist())) == ROWS
    assert set(together.tolist()) == set(range(ROWS))
    assert "stratified" in result.description


def test_stratified_split_sizes_follow_test_and_validation_size():
    frame = table()

    result = split(frame, make_project(frame, test_size=0.2, validation_size=0.2))

    assert len(result.test) == pytest.approx(0.2 * ROWS, abs=1)
    assert len(result.validation) == pytest.approx(0.2 * ROWS, abs=1)
    assert len(result.train) == pytest.approx(0.6 * ROWS, abs=2)


def test_stratified_split_keeps_the_class_balance_in_every_set():
    frame = table(positive_share=0.2)
    y = frame["y"].to_numpy()

    result = split(frame, make_project(frame))

    for name, rows in sets(result).items():
        assert y[rows].mean() == pytest.approx(y.mean(), abs=0.03), name


@pytest.mark.parametrize("positives", [1, 2])
def test_stratified_split_with_too_few_positives_raises_training_error(positives):
    frame = table()
    project = make_project(frame)
    frame["y"] = np.r_[np.ones(positives, dtype=int), np.zeros(ROWS - positives, dtype=int)]

    with pytest.raises(TrainingError, match="rarer class"):
        split(frame, project)


# time ------------------------------------------------------------------------------------


def test_time_split_puts_every_test_row_at_or_after_test_start():
    frame = dated(table())
    project = make_project(frame, timestamp="when", split="time", test_start="2020-09-01")
    times = pd.to_datetime(frame["when"])

    result = split(frame, project)

    start = pd.Timestamp("2020-09-01")
    assert (times.iloc[result.test] >= start).all()
    assert (times.iloc[np.concatenate([result.train, result.validation])] < start).all()
    assert len(result.test) == int((times >= start).sum())


def test_time_split_orders_train_before_validation_before_test():
    frame = dated(table())
    times = pd.to_datetime(frame["when"])

    result = split(frame, make_project(frame, timestamp="when", split="time"))

    assert times.iloc[result.train].max() < times.iloc[result.validation].min()
    assert times.iloc[result.validation].max() < times.iloc[result.test].min()
    together = np.concatenate(list(sets(result).values()))
    assert sorted(together.tolist()) == list(range(ROWS))
    assert result.description.startswith("time split on when")


def test_time_split_without_test_start_holds_out_the_latest_test_size_share():
    frame = dated(table())
    times = pd.to_datetime(frame["when"])

    result = split(frame, make_project(frame, timestamp="when", split="time", test_size=0.25))

    assert len(result.test) == pytest.approx(0.25 * ROWS, abs=1)
    assert set(result.test.tolist()) == set(np.argsort(times.to_numpy())[-len(result.test) :])


@pytest.fixture
def bad_times() -> tuple[pd.DataFrame, list[int]]:
    """A dated table with far-future, unparseable and missing times at known rows."""
    frame = dated(table())
    bad = {7: "3021-09-18", 8: "3021-09-18", 9: "not a date", 10: None}
    for row, value in bad.items():
        frame.loc[row, "when"] = value
    return frame, list(bad)


def test_time_split_leaves_out_unreadable_and_far_future_times_without_warning(bad_times):
    frame, bad_rows = bad_times
    project = make_project(frame, timestamp="when", split="time", test_start="2020-09-01")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows, _notes = prepare_rows(frame, project)
        result = split(rows, project)

    assert [str(warning.message) for warning in caught] == []
    assert len(rows) == ROWS
    assert placement(result, bad_rows) == dict.fromkeys(bad_rows)
    assert sum(len(rows) for rows in sets(result).values()) == ROWS - len(bad_rows)
    assert f"{len(bad_rows)} rows without a readable time left out" in result.description


def test_time_split_leaves_out_dates_outside_the_guarded_range():
    # The date guard tells the user values outside 1900-2100 "are treated as missing".
    frame = dated(table())
    frame.loc[3, "when"] = "2150-06-01"
    frame.loc[4, "when"] = "1850-03-01"
    project = make_project(frame, timestamp="when", split="time", test_start="2020-09-01")

    result = split(frame, project)

    assert placement(result, [3, 4]) == {3: None, 4: None}
    assert "2 rows without a readable time left out" in result.description


@pytest.mark.parametrize("form", ["utc_datetime_column", "iso_strings_with_offset"])
def test_time_split_reads_utc_times_like_naive_ones(form):
    frame = table()
    days = pd.date_range("2020-01-01", periods=ROWS, freq="D", tz="UTC")
    if form == "utc_datetime_column":
        frame["when"] = days
    else:
        frame["when"] = pd.Series(days.strftime("%Y-%m-%dT%H:%M:%S+00:00"), dtype=object)
    project = make_project(frame, timestamp="when", split="time", test_start="2020-09-01")

    result = split(frame, project)

    utc = days.tz_convert(None)
    assert (utc[result.test] >= pd.Timestamp("2020-09-01")).all()
    assert len(result.test) == int((utc >= pd.Timestamp("2020-09-01")).sum())
    assert utc[result.train].max() < utc[result.validation].min()


def test_time_split_whose_test_rows_hold_a_single_class_raises_training_error():
    frame = dated(table())
    times = pd.to_datetime(frame["when"])
    frame["y"] = np.where(times < pd.Timestamp("2020-08-01"), frame["y"], 0)
    project = make_project(frame, timestamp="when", split="time", test_start="2020-08-01")

    with pytest.raises(TrainingError, match="the test set holds a single class"):
        split(frame, project)


def test_time_split_with_no_row_after_test_start_raises_training_error():
    frame = dated(table())
    project = make_project(frame, timestamp="when", split="time", test_start="2030-01-01")

    with pytest.raises(TrainingError, match="no rows on one side"):
        split(frame, project)


# group -----------------------------------------------------------------------------------


@pytest.fixture
def grouped() -> pd.DataFrame:
    """60 customers with 5 rows each, in shuffled file order."""
    frame = table()
    customers = np.repeat([f"c{number:03d}" for number in range(ROWS // 5)], 5)
    return frame.assign(customer=np.random.default_rng(2).permutation(customers))


def test_group_split_puts_no_entity_in_two_sets(grouped):
    project = make_project(grouped, entity="customer", split="group")

    result = split(grouped, project)

    customers = {name: set(grouped["customer"].iloc[rows]) for name, rows in sets(result).items()}
    assert customers["train"].isdisjoint(customers["validation"])
    assert customers["train"].isdisjoint(customers["test"])
    assert customers["validation"].isdisjoint(customers["test"])
    together = np.concatenate(list(sets(result).values()))
    assert sorted(together.tolist()) == list(range(ROWS))
    assert "no entity in more than one set" in result.description


# prepare_rows ----------------------------------------------------------------------------


def with_row_ids(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(row_id=np.arange(len(frame)) + 0.5)


def test_dedupe_keep_last_keeps_each_entitys_latest_row_by_timestamp(grouped):
    frame = with_row_ids(dated(grouped))
    project = make_project(frame, entity="customer", timestamp="when", dedupe="keep_last")

    kept, notes = prepare_rows(frame, project)

    assert len(kept) == frame["customer"].nunique()
    assert kept["customer"].is_unique
    times = frame.assign(when=pd.to_datetime(frame["when"]))
    latest = times.loc[times.groupby("customer")["when"].idxmax(), "row_id"]
    assert set(kept["row_id"]) == set(latest)
    assert notes == [f"kept the latest of {ROWS} rows for each of {len(kept)} entities (customer)"]


def test_dedupe_keep_last_ignores_unreadable_times_when_choosing_the_latest_row():
    frame = pd.DataFrame(
        {
            "customer": ["a", "a", "a", "b", "b"],
            "when": ["2021-01-01", "2021-03-01", "not a date", "2021-05-01", "2020-01-01"],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "y": [0, 1, 0, 1, 0],
        }
    )
    project = make_project(frame, entity="customer", timestamp="when", dedupe="keep_last")

    kept, _notes = prepare_rows(frame, project)

    assert kept.set_index("customer")["when"].to_dict() == {"a": "2021-03-01", "b": "2021-05-01"}


def test_dedupe_keep_last_without_timestamp_keeps_the_last_row_in_file_order(grouped):
    frame = with_row_ids(grouped)
    project = make_project(frame, entity="customer", dedupe="keep_last")

    kept, _notes = prepare_rows(frame, project)

    assert len(kept) == frame["customer"].nunique()
    last = frame.drop_duplicates(subset="customer", keep="last")["row_id"]
    assert set(kept["row_id"]) == set(last)


def test_drop_duplicate_rows_removes_exact_copies_with_a_note():
    frame = table()
    doubled = pd.concat([frame, frame.iloc[[3, 4, 5]]], ignore_index=True)
    project = make_project(doubled, drop_duplicate_rows=True)

    kept, notes = prepare_rows(doubled, project)

    assert len(kept) == ROWS
    assert not kept.duplicated().any()
    assert notes == ["dropped 3 exact duplicate rows"]


def test_exact_duplicates_stay_without_drop_duplicate_rows():
    frame = table()
    doubled = pd.concat([frame, frame.iloc[[3, 4, 5]]], ignore_index=True)

    kept, notes = prepare_rows(doubled, make_project(doubled))

    assert len(kept) == ROWS + 3
    assert notes == []


def test_rows_without_a_target_are_dropped_with_a_note():
    frame = table().astype({"y": "float64"})
    frame.loc[[0, 10, 20, 30], "y"] = np.nan

    kept, notes = prepare_rows(frame, make_project(frame))

    assert len(kept) == ROWS - 4
    assert kept["y"].notna().all()
    assert list(kept.index) == list(range(ROWS - 4))
    assert notes == ["dropped 4 rows without a target value"]


# cv_splitter -----------------------------------------------------------------------------


def test_cv_splitter_refuses_fewer_minority_rows_than_folds():
    frame = table()
    y = np.r_[np.ones(2, dtype=int), np.zeros(100, dtype=int)]

    with pytest.raises(TrainingError, match="only 2 training rows of the rarer class"):
        cv_splitter(make_project(frame, cv_folds=3), y)


def test_cv_splitter_is_stratified_with_the_project_folds():
    frame = table()
    y = frame["y"].to_numpy()

    splitter = cv_splitter(make_project(frame, cv_folds=4), y)

    assert isinstance(splitter, StratifiedKFold)
    assert splitter.get_n_splits() == 4
    for fit_rows, score_rows in splitter.split(np.zeros((len(y), 1)), y):
        assert set(fit_rows).isdisjoint(score_rows)
        assert y[score_rows].mean() == pytest.approx(y.mean(), abs=0.05)


def test_cv_splitter_for_group_split_keeps_entities_within_one_fold(grouped):
    project = make_project(grouped, entity="customer", split="group", cv_folds=3)
    y = grouped["y"].to_numpy()
    groups = grouped["customer"].to_numpy()

    splitter = cv_splitter(project, y)

    assert isinstance(splitter, StratifiedGroupKFold)
    for fit_rows, score_rows in splitter.split(np.zeros((len(y), 1)), y, groups):
        assert set(groups[fit_rows]).isdisjoint(groups[score_rows])
