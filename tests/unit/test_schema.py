"""Schema inference and coercion on the heart-failure data and on small hand-made frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabops.errors import DataError
from tabops.schema import ColumnSpec, FeatureSpec, Kind, Role, coerce_frame, infer_schema

ROWS = 120
HEART_BOOLEANS = ["anaemia", "diabetes", "high_blood_pressure", "sex", "smoking"]


@pytest.fixture
def base() -> pd.DataFrame:
    """A usable frame: one continuous feature and a balanced binary target."""
    rng = np.random.default_rng(7)
    return pd.DataFrame({"x": rng.normal(size=ROWS), "target": np.tile([0, 1], ROWS // 2)})


def column(frame: pd.DataFrame, name: str, target: str = "target") -> ColumnSpec:
    return infer_schema(frame, target).spec.column(name)


def test_infer_schema_heart_frame_has_twelve_features_and_the_target(heart_frame):
    inference = infer_schema(heart_frame, "DEATH_EVENT")

    assert inference.spec.feature_names == [c for c in heart_frame.columns if c != "DEATH_EVENT"]
    assert len(inference.spec.features) == 12
    assert inference.spec.column("DEATH_EVENT").role is Role.TARGET
    assert inference.warnings == []


def test_infer_schema_heart_zero_one_columns_are_boolean_without_range(heart_frame):
    spec = infer_schema(heart_frame, "DEATH_EVENT").spec

    for name in HEART_BOOLEANS:
        assert spec.column(name).kind is Kind.BOOLEAN, name
        assert spec.column(name).minimum is None
        assert spec.column(name).maximum is None


@pytest.mark.parametrize(
    ("name", "kind", "minimum", "maximum"),
    [
        ("age", Kind.NUMERIC, 40.0, 95.0),
        ("creatinine_phosphokinase", Kind.INTEGER, 23.0, 7861.0),
        ("ejection_fraction", Kind.INTEGER, 14.0, 80.0),
        ("platelets", Kind.NUMERIC, 25100.0, 850000.0),
        ("serum_creatinine", Kind.NUMERIC, 0.5, 9.4),
        ("serum_sodium", Kind.INTEGER, 113.0, 148.0),
        ("time", Kind.INTEGER, 4.0, 285.0),
    ],
)
def test_infer_schema_heart_numbers_get_kind_and_observed_range(
    heart_frame, name, kind, minimum, maximum
):
    spec = infer_schema(heart_frame, "DEATH_EVENT").spec.column(name)

    assert spec.kind is kind
    assert spec.minimum == pytest.approx(minimum)
    assert spec.maximum == pytest.approx(maximum)
    assert spec.nullable is False
    assert spec.role is Role.FEATURE


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("id", lambda rng: rng.permutation(ROWS) * 7 + 3),
        ("row_number", lambda rng: np.arange(1000, 1000 + ROWS)),
        ("code", lambda rng: [f"C{i:05d}x" for i in rng.permutation(ROWS)]),
        ("customer_id", lambda rng: [f"cust-{i}" for i in range(ROWS)]),
    ],
    ids=["id-unique-ints", "consecutive-ints", "unique-strings", "named-id-strings"],
)
def test_infer_schema_excludes_id_like_column_with_reason(base, name, make):
    frame = base.assign(**{name: make(np.random.default_rng(1))})

    inference = infer_schema(frame, "target")

    spec = inference.spec.column(name)
    assert spec.role is Role.EXCLUDED
    assert "id-like" in (spec.reason or "")
    assert name not in inference.spec.feature_names
    assert any(name in warning and "id-like" in warning for warning in inference.warnings)


@pytest.mark.parametrize("name", ["amount_paid", "fluid"])
def test_infer_schema_keeps_continuous_column_whose_name_merely_ends_in_id(base, name):
    values = np.random.default_rng(3).normal(100, 20, size=ROWS)

    spec = column(base.assign(**{name: values}), name)

    assert spec.role is Role.FEATURE, spec.reason
    assert spec.kind is Kind.NUMERIC


def test_infer_schema_excludes_constant_column(base):
    inference = infer_schema(base.assign(site=5), "target")

    spec = inference.spec.column("site")
    assert spec.role is Role.EXCLUDED
    assert "constant" in (spec.reason or "")
    assert any("site" in warning for warning in inference.warnings)


def test_infer_schema_excludes_all_null_column_as_constant(base):
    spec = column(base.assign(empty=np.nan), "empty")

    assert spec.role is Role.EXCLUDED
    assert "constant" in (spec.reason or "")


def test_infer_schema_excludes_duplicate_column_naming_its_twin(base):
    inference = infer_schema(base.assign(x_copy=base["x"]), "target")

    assert inference.spec.column("x").role is Role.FEATURE
    copy = inference.spec.column("x_copy")
    assert copy.role is Role.EXCLUDED
    assert "'x'" in (copy.reason or "")
    assert "copy" in (copy.reason or "")
    assert inference.spec.feature_names == ["x"]


def test_infer_schema_excludes_duplicate_categorical_column(base):
    colours = np.random.default_rng(5).choice(["red", "blue"], size=ROWS)

    inference = infer_schema(base.assign(c1=colours, c2=colours), "target")

    assert inference.spec.column("c1").role is Role.FEATURE
    assert inference.spec.column("c2").role is Role.EXCLUDED
    assert "'c1'" in (inference.spec.column("c2").reason or "")


def test_infer_schema_keeps_equal_valued_but_different_columns(base):
    rng = np.random.default_rng(9)
    frame = base.assign(a=rng.integers(0, 5, ROWS), b=rng.integers(0, 5, ROWS))

    inference = infer_schema(frame, "target")

    assert inference.spec.column("a").role is Role.FEATURE
    assert inference.spec.column("b").role is Role.FEATURE


def test_infer_schema_iso_dates_with_year_3021_become_excluded_datetime(base):
    dates = pd.date_range("2020-01-01", periods=ROWS).strftime("%Y-%m-%d").tolist()
    dates[3] = "3021-09-18"  # beyond pandas' Timestamp range

    inference = infer_schema(base.assign(job_start_date=dates), "target")

    spec = inference.spec.column("job_start_date")
    assert spec.kind is Kind.DATETIME
    assert spec.role is Role.EXCLUDED
    assert "date" in (spec.reason or "")


def test_infer_schema_column_of_only_far_future_dates_is_datetime(base):
    dates = [f"3021-{m % 12 + 1:02d}-{d % 28 + 1:02d}" for m, d in enumerate(range(ROWS))]

    spec = column(base.assign(when=dates), "when")

    assert spec.kind is Kind.DATETIME
    assert spec.role is Role.EXCLUDED


def test_infer_schema_datetime_dtype_column_is_excluded(base):
    spec = column(base.assign(when=pd.date_range("2015-01-01", periods=ROWS)), "when")

    assert spec.kind is Kind.DATETIME
    assert spec.role is Role.EXCLUDED


def test_infer_schema_low_cardinality_strings_are_categorical_with_sorted_categories(base):
    colours = np.random.default_rng(2).choice(["red", "blue", "green"], size=ROWS)

    spec = column(base.assign(colour=colours), "colour")

    assert spec.role is Role.FEATURE
    assert spec.kind is Kind.CATEGORICAL
    assert spec.categories == ["blue", "green", "red"]
    assert spec.nullable is False


def test_infer_schema_categorical_with_nan_is_nullable(base):
    colours = np.random.default_rng(2).choice(["b", "a", "c"], size=ROWS).astype(object)
    colours[[4, 9]] = np.nan

    spec = column(base.assign(colour=colours), "colour")

    assert spec.kind is Kind.CATEGORICAL
    assert spec.nullable is True
    assert spec.categories == ["a", "b", "c"]


def test_infer_schema_ordinal_strings_are_categorical_not_dates(base):
    classes = np.random.default_rng(4).choice(["1st", "2nd", "3rd"], size=ROWS)

    spec = column(base.assign(passenger_class=classes), "passenger_class")

    assert spec.kind is Kind.CATEGORICAL
    assert spec.role is Role.FEATURE


def test_infer_schema_many_distinct_strings_are_excluded_as_text(base):
    words = [f"note {i % 80}" for i in range(ROWS)]

    spec = column(base.assign(note=words), "note")

    assert spec.kind is Kind.TEXT
    assert spec.role is Role.EXCLUDED


def test_infer_schema_zero_one_floats_with_nan_are_nullable_boolean(base):
    values = np.tile([0.0, 1.0, np.nan], ROWS // 3)

    spec = column(base.assign(flag=values), "flag")

    assert spec.kind is Kind.BOOLEAN
    assert spec.nullable is True
    assert spec.role is Role.FEATURE


def test_infer_schema_string_target_is_accepted(base):
    frame = base.assign(target=np.where(base["target"] == 1, "yes", "no"))

    spec = infer_schema(frame, "target").spec

    assert spec.column("target").role is Role.TARGET
    assert spec.feature_names == ["x"]


def test_infer_schema_missing_target_raises_data_error_naming_it(base):
    with pytest.raises(DataError, match="outcome"):
        infer_schema(base, "outcome")


@pytest.mark.parametrize("values", [np.arange(ROWS) % 3, np.ones(ROWS, dtype=int)])
def test_infer_schema_non_binary_target_raises_data_error(base, values):
    with pytest.raises(DataError, match="two classes"):
        infer_schema(base.assign(target=values), "target")


def test_infer_schema_without_usable_feature_raises_data_error(base):
    frame = base.drop(columns=["x"]).assign(id=np.arange(ROWS), site="north")

    with pytest.raises(DataError, match="no usable feature"):
        infer_schema(frame, "target")


def test_feature_spec_column_lookup_of_unknown_name_raises_key_error(heart_frame):
    spec = infer_schema(heart_frame, "DEATH_EVENT").spec

    with pytest.raises(KeyError):
        spec.column("cholesterol")


def test_coerce_frame_gives_float64_numbers_and_str_categories_in_spec_order(base):
    rng = np.random.default_rng(11)
    colours = rng.choice(["red", "blue"], size=ROWS).astype(object)
    colours[1] = np.nan
    frame = base.assign(
        count=rng.integers(0, 9, ROWS),
        flag=np.tile([True, False], ROWS // 2),
        colour=colours,
        id=np.arange(ROWS),
    )
    frame = frame[["colour", "id", "target", "count", "x", "flag"]]
    spec = infer_schema(frame, "target").spec

    coerced = coerce_frame(frame, spec)

    assert list(coerced.columns) == spec.feature_names == ["colour", "count", "x", "flag"]
    for name in ("count", "x", "flag"):
        assert coerced[name].dtype == np.float64, name
    present = coerced["colour"].dropna()
    assert all(isinstance(value, str) for value in present)
    assert set(present) == {"red", "blue"}
    assert coerced["colour"].isna().sum() == 1
    assert coerced.index.equals(frame.index)


def test_coerce_frame_turns_numeric_categories_and_bad_numbers_into_strings_and_nan():
    spec = FeatureSpec(
        columns=[
            ColumnSpec(name="grade", kind=Kind.CATEGORICAL, categories=["1", "2"]),
            ColumnSpec(name="dose", kind=Kind.NUMERIC, nullable=True),
        ]
    )
    frame = pd.DataFrame({"grade": [1, 2, 1], "dose": ["1.5", "oops", None]})

    coerced = coerce_frame(frame, spec)

    assert coerced["grade"].tolist() == ["1", "2", "1"]
    assert coerced["dose"].dtype == np.float64
    assert coerced["dose"].iloc[0] == 1.5
    assert coerced["dose"].iloc[1:].isna().all()
