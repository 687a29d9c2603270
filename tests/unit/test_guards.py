"""Data-quality guards on small hand-made frames, one per guard, plus date parsing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabops.errors import TrainingError
from tabops.project import Project
from tabops.schema import ColumnSpec, FeatureSpec, Kind, Role, coerce_frame, infer_schema
from tabops.training.guards import (
    PROBABLE_LEAK_AUC,
    SUSPECT_LEAK_AUC,
    GuardFinding,
    check_data_quality,
    parse_dates,
)
from tabops.training.leaks import (
    apply_leak_action,
    exclude_columns,
    find_dominant_feature,
    find_near_copies,
)

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


# graded leaks ----------------------------------------------------------------------------


def agreeing(target: pd.Series, share: float, seed: int = 5) -> np.ndarray:
    """A 0/1 column equal to the target on exactly ``share`` of rows, chosen at random."""
    flipped = np.random.default_rng(seed).permutation(len(target))[
        : round(len(target) * (1 - share))
    ]
    values = target.to_numpy().copy()
    values[flipped] = 1 - values[flipped]
    return values


def test_column_agreeing_with_the_target_on_97_percent_of_rows_is_a_probable_leak(clean):
    frame = clean.assign(agrees=agreeing(clean["target"], 0.97))

    [leak] = found(run(frame), "probable_leak")

    assert leak.column == "agrees"
    assert leak.severity == "warning"
    assert leak.value == pytest.approx(0.97, abs=0.005)
    assert f"ROC AUC {leak.value:.3f}" in leak.message
    assert "column 'agrees' alone separates the classes" in leak.message
    assert found(run(frame), "strong_feature") == []


def test_column_agreeing_on_90_percent_of_rows_is_a_strong_feature_for_information(clean):
    frame = clean.assign(agrees=agreeing(clean["target"], 0.90))

    findings = run(frame)

    assert found(findings, "probable_leak") == []
    [strong] = found(findings, "strong_feature")
    assert (strong.column, strong.severity) == ("agrees", "info")
    assert strong.value == pytest.approx(0.90, abs=0.005)
    assert f"ROC AUC {strong.value:.3f}" in strong.message
    assert "check it is known before the outcome" in strong.message


def test_column_agreeing_on_80_percent_of_rows_is_not_reported(clean):
    frame = clean.assign(agrees=agreeing(clean["target"], 0.80))

    findings = run(frame)

    assert found(findings, "probable_leak") == found(findings, "strong_feature") == []


def test_leak_levels_are_ordered():
    assert 0.5 < SUSPECT_LEAK_AUC < PROBABLE_LEAK_AUC < 1.0


# near copies -----------------------------------------------------------------------------


def copies(frame: pd.DataFrame) -> list[GuardFinding]:
    return find_near_copies(frame, infer_schema(frame, "target").spec, "target")


def test_gapped_copy_is_a_near_copy_of_the_complete_column(clean):
    gapped = clean["x"].where(np.arange(ROWS) % 4 != 0)
    frame = clean.assign(x_again=gapped)

    [copy] = copies(frame)

    assert (copy.guard, copy.severity, copy.column) == ("near_copy", "warning", "x_again")
    assert copy.value == 1.0
    assert "near copy of 'x': equal on 150 shared rows" in copy.message


def test_the_column_with_fewer_gaps_is_kept_even_when_listed_later(clean):
    gapped = clean["x"].where(np.arange(ROWS) % 4 != 0)
    frame = clean.assign(x=gapped, x_full=clean["x"])

    [copy] = copies(frame)

    assert copy.column == "x"
    assert "near copy of 'x_full'" in copy.message


def test_of_two_complete_copies_the_one_listed_first_is_kept(clean):
    frame = clean.assign(count_again=clean["count"])
    listed_first = ColumnSpec(name="count_again", kind=Kind.INTEGER)
    spec = FeatureSpec(columns=[listed_first, *infer_schema(clean, "target").spec.columns])

    [copy] = find_near_copies(frame, spec, "target")

    assert copy.column == "count"
    assert "near copy of 'count_again': equal on 200 shared rows" in copy.message


def test_column_correlated_at_0_9995_is_a_near_copy_with_its_correlation(clean):
    rng = np.random.default_rng(11)
    noise = rng.normal(size=ROWS)
    # x plus a little independent noise, scaled so the correlation is 0.9995 exactly.
    scale = np.sqrt(1 / 0.9995**2 - 1) * clean["x"].std()
    noise = (noise - noise.mean()) / noise.std()
    noise -= np.polyval(np.polyfit(clean["x"], noise, 1), clean["x"])
    noise /= noise.std()
    frame = clean.assign(x_scaled=1000 + 50 * (clean["x"] + scale * noise))

    [copy] = copies(frame)

    assert copy.column == "x_scaled"
    assert copy.value == pytest.approx(0.9995, abs=1e-4)
    assert "near copy of 'x': correlation 0.999" in copy.message


def test_a_negated_column_is_a_near_copy_too(clean):
    frame = clean.assign(minus_x=-2 * clean["x"])

    [copy] = copies(frame)

    assert copy.column == "minus_x"
    assert copy.value == pytest.approx(-1.0)


def test_categorical_copy_with_gaps_is_a_near_copy(clean):
    shade = clean["colour"].where(np.arange(ROWS) % 5 != 0)
    frame = clean.assign(shade=shade)

    [copy] = copies(frame)

    assert copy.column == "shade"
    assert "near copy of 'colour': equal on 160 shared rows" in copy.message


def test_columns_close_but_not_copies_are_not_reported(clean):
    rng = np.random.default_rng(2)
    colour = clean["colour"].to_numpy().copy()
    colour[:10] = "purple"
    frame = clean.assign(
        x_noisy=clean["x"] + rng.normal(scale=0.1, size=ROWS),  # correlation about 0.995
        colour_edited=colour,
        count_sparse=clean["count"].where(np.arange(ROWS) < 40),  # 40 shared rows only
    )

    assert copies(frame) == []


def test_copies_of_the_target_or_of_an_excluded_column_are_left_to_other_guards(clean):
    frame = clean.assign(
        outcome=clean["target"], customer_id=np.arange(ROWS), also_id=np.arange(ROWS)
    )

    assert copies(frame) == []


def test_columns_equal_only_where_constant_are_not_copies(clean):
    flag = np.where(np.arange(ROWS) < 100, 1.0, np.nan)
    other = np.where(np.arange(ROWS) < 100, 1.0, 0.0)
    other[100:] = np.random.default_rng(4).normal(size=ROWS - 100)
    frame = clean.assign(flag=flag, other=other)

    assert copies(frame) == []


def test_empty_columns_are_never_copies_and_infinite_values_count_as_gaps(clean):
    frame = clean.assign(
        empty=np.nan, also_empty=np.nan, spikes=np.where(clean["x"] > 1, np.inf, clean["x"])
    )
    extra = [ColumnSpec(name=n, kind=Kind.NUMERIC, nullable=True) for n in ("empty", "also_empty")]
    spec = FeatureSpec(
        columns=[
            *infer_schema(clean, "target").spec.columns,
            *extra,
            ColumnSpec(name="spikes", kind=Kind.NUMERIC),
        ]
    )

    [copy] = find_near_copies(frame, spec, "target")

    assert copy.column == "spikes"
    assert copy.message.startswith("column 'spikes' is a near copy of 'x': equal on")


def test_three_copies_keep_one_and_report_two(clean):
    frame = clean.assign(
        x2=clean["x"].where(np.arange(ROWS) % 3 != 0),
        x3=clean["x"].where(np.arange(ROWS) % 2 != 0),
    )

    found_copies = copies(frame)

    assert [copy.column for copy in found_copies] == ["x2", "x3"]
    assert all("near copy of 'x'" in copy.message for copy in found_copies)


def test_near_copies_of_a_wide_table_are_found_among_many_columns():
    rng = np.random.default_rng(8)
    rows = 3_000
    frame = pd.DataFrame({f"f{i}": rng.normal(size=rows) for i in range(30)})
    frame["f29"] = frame["f3"].where(rng.random(rows) > 0.4)
    frame["target"] = (frame["f0"] + rng.normal(size=rows) > 0).astype(int)

    [copy] = copies(frame)

    assert copy.column == "f29"
    assert "near copy of 'f3'" in copy.message


# dominant feature ------------------------------------------------------------------------


def dominance_table(rows: int = 600, seed: int = 7) -> tuple[pd.DataFrame, FeatureSpec]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.4).astype(int)
    frame = pd.DataFrame(
        {
            "weak": rng.normal(size=rows) + 0.3 * y,
            "noise": rng.normal(size=rows),
            "colour": rng.choice(["red", "green", "blue"], size=rows),
            "target": y,
        }
    )
    return frame, infer_schema(frame, "target").spec


def dominant(frame: pd.DataFrame, seed: int = 0) -> GuardFinding | None:
    spec = infer_schema(frame, "target").spec
    return find_dominant_feature(coerce_frame(frame, spec), frame["target"].to_numpy(), spec, seed)


def test_feature_carrying_the_model_is_dominant_with_both_numbers():
    frame, _spec = dominance_table()
    frame["status"] = agreeing(frame["target"], 0.95) + np.random.default_rng(1).normal(
        scale=0.1, size=len(frame)
    )

    finding = dominant(frame)

    assert finding is not None
    assert (finding.guard, finding.severity, finding.column) == (
        "dominant_feature",
        "warning",
        "status",
    )
    assert finding.value is not None
    assert finding.value > 0.2
    assert f"falls by {finding.value:.3f}" in finding.message
    assert "other 3 columns in all (0.0" in finding.message


def test_dominant_feature_is_deterministic():
    frame, _spec = dominance_table()
    frame["status"] = agreeing(frame["target"], 0.95).astype(float)

    assert dominant(frame) == dominant(frame)


def test_several_useful_features_give_no_dominant_feature():
    rng = np.random.default_rng(9)
    rows = 600
    y = (rng.random(rows) < 0.5).astype(int)
    frame = pd.DataFrame({f"s{i}": rng.normal(size=rows) + 0.8 * y for i in range(4)})
    frame["target"] = y

    assert dominant(frame) is None


def test_no_feature_dominates_a_model_that_learns_nothing():
    frame, _spec = dominance_table()
    frame["target"] = np.random.default_rng(3).permutation(frame["target"].to_numpy())

    assert dominant(frame) is None


def test_dominant_feature_is_found_on_a_sample_of_the_rows():
    frame, spec = dominance_table(rows=2_000)
    frame["status"] = agreeing(frame["target"], 0.97).astype(float)
    spec = infer_schema(frame, "target").spec

    finding = find_dominant_feature(
        coerce_frame(frame, spec), frame["target"].to_numpy(), spec, 0, max_rows=400
    )

    assert finding is not None
    assert finding.column == "status"


def test_one_feature_or_too_few_positives_give_no_dominant_feature(clean):
    single = clean[["x", "target"]]
    spec = infer_schema(single, "target").spec
    assert find_dominant_feature(coerce_frame(single, spec), single["target"], spec, 0) is None

    rare = clean.assign(target=(np.arange(ROWS) < 2).astype(int))
    assert dominant(rare) is None


# leak action -----------------------------------------------------------------------------


def leak_findings(clean: pd.DataFrame) -> list[GuardFinding]:
    frame = clean.assign(
        agrees=agreeing(clean["target"], 0.97),
        x_again=clean["x"].where(np.arange(ROWS) % 4 != 0),
    )
    spec = infer_schema(frame, "target").spec
    return [
        *check_data_quality(frame, spec, "target", frame["target"].to_numpy()),
        *find_near_copies(frame, spec, "target"),
    ]


def test_warn_leaves_out_near_copies_only(clean):
    removed = apply_leak_action(leak_findings(clean), "warn")

    assert removed == {"x_again": "near copy of 'x': equal on 150 shared rows"}


def test_exclude_leaves_out_probable_leaks_too_with_their_value(clean):
    findings = leak_findings(clean)
    [leak] = found(findings, "probable_leak")

    removed = apply_leak_action(findings, "exclude")

    assert removed == {
        "agrees": f"probable leak: alone separates the classes with ROC AUC {leak.value:.3f}",
        "x_again": "near copy of 'x': equal on 150 shared rows",
    }


def test_fail_refuses_to_train_naming_the_column_and_its_value(clean):
    findings = leak_findings(clean)
    [leak] = found(findings, "probable_leak")

    with pytest.raises(TrainingError, match=rf"'agrees' \(ROC AUC {leak.value:.3f}\)"):
        apply_leak_action(findings, "fail")


def test_fail_without_a_probable_leak_leaves_out_only_near_copies(clean):
    findings = [f for f in leak_findings(clean) if f.guard != "probable_leak"]

    assert list(apply_leak_action(findings, "fail")) == ["x_again"]


def leak_project(frame: pd.DataFrame) -> Project:
    return Project(
        name="demo",
        data="table.csv",
        target="target",
        positive_class=1,
        class_names={"0": "no", "1": "yes"},
        schema_=infer_schema(frame, "target").spec,
    )


def test_exclude_columns_gives_a_project_without_them_and_keeps_the_original(clean):
    project = leak_project(clean.assign(x_again=clean["x"].where(np.arange(ROWS) % 4 != 0)))

    trained = exclude_columns(project, {"x_again": "near copy of 'x'"})

    assert trained.schema_.feature_names == ["x", "count", "colour"]
    excluded = trained.schema_.column("x_again")
    assert (excluded.role, excluded.reason) == (Role.EXCLUDED, "near copy of 'x'")
    assert "x_again" in project.schema_.feature_names
    stored = trained.model_dump(mode="json", by_alias=True)["schema"]["columns"]
    assert [c["role"] for c in stored if c["name"] == "x_again"] == ["excluded"]
    assert exclude_columns(project, {}) is project


def test_exclude_columns_refuses_to_leave_no_feature(clean):
    project = leak_project(clean)

    with pytest.raises(TrainingError, match="no feature is left"):
        exclude_columns(project, {"x": "a", "count": "b", "colour": "c"})
