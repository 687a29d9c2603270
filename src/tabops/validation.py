"""Checking a table against a feature spec (pandera), producing a readable report."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from pydantic import BaseModel

from tabops.schema import ColumnSpec, FeatureSpec, Kind, Role, python_value

# With pyspark installed (the 'spark' extra), pandera tries to import pyspark.pandas, which warns
# that it does not support pandas 3; that import then fails and pandera carries on (tabops does not
# use pyspark.pandas). pandera tries again in the checks module it loads on the first validate, so
# load that here too. Only this one warning is silenced, and only during these imports.
with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    import pandera.backends.pandas.builtin_checks  # noqa: F401  # imported for the reason above
    import pandera.pandas as pa

_EXAMPLES_PER_CHECK = 5


class ValidationFailure(BaseModel):
    """One failed check on one column, with how many rows failed and a few examples."""

    column: str | None
    check: str
    failed_rows: int
    examples: list[Any]


class ValidationReport(BaseModel):
    """The outcome of ``validate_frame``."""

    rows: int
    failures: list[ValidationFailure]
    unknown_columns: list[str]

    @property
    def is_valid(self) -> bool:
        """True when every check passed."""
        return not self.failures


def build_pandera_schema(spec: FeatureSpec, *, require_target: bool = False) -> pa.DataFrameSchema:
    """The pandera schema equivalent to a feature spec (features and target only)."""
    columns: dict[str, pa.Column] = {}
    for column in spec.columns:
        if column.role is Role.EXCLUDED:
            continue
        columns[column.name] = pa.Column(
            nullable=column.nullable,
            required=column.role is Role.FEATURE or require_target,
            checks=_checks_for(column),
        )
    return pa.DataFrameSchema(columns, strict=False)


def _checks_for(column: ColumnSpec) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if column.kind in (Kind.NUMERIC, Kind.INTEGER, Kind.BOOLEAN):
        checks.append(pa.Check(_is_number_or_null, name="is_numeric", error="must be a number"))
    if column.kind is Kind.BOOLEAN:
        checks.append(pa.Check.isin([0, 1, True, False], name="is_boolean"))
    if column.minimum is not None and column.maximum is not None:
        low, high = column.minimum, column.maximum
        # Non-numbers pass here: is_numeric reports them, with their value.
        checks.append(pa.Check(_within(low, high), name=f"in_range({low:g}, {high:g})"))
    if column.categories is not None:
        checks.append(
            pa.Check(
                lambda s, allowed=frozenset(column.categories): s.astype(str).isin(allowed),
                name=f"isin({column.categories})",
            )
        )
    return checks


def _is_number_or_null(series: pd.Series) -> pd.Series:
    if is_numeric_dtype(series) or is_bool_dtype(series):
        return pd.Series(True, index=series.index)
    return series.isna() | pd.to_numeric(series, errors="coerce").notna()


def _within(low: float, high: float) -> Callable[[pd.Series], pd.Series]:
    def check(series: pd.Series) -> pd.Series:
        numbers = pd.Series(pd.to_numeric(series, errors="coerce"), index=series.index)
        return numbers.isna() | numbers.between(low, high)

    return check


def validate_frame(
    frame: pd.DataFrame, spec: FeatureSpec, *, require_target: bool = False
) -> ValidationReport:
    """Check every feature column of ``frame`` against ``spec`` and collect all failures."""
    schema = build_pandera_schema(spec, require_target=require_target)
    known = {column.name for column in spec.columns}
    unknown = [str(name) for name in frame.columns if name not in known]
    failures: list[ValidationFailure] = []
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        failures = _summarise(exc.failure_cases)
    return ValidationReport(rows=len(frame), failures=failures, unknown_columns=unknown)


def _summarise(cases: pd.DataFrame) -> list[ValidationFailure]:
    failures = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        name = str(column) if isinstance(column, str) else None
        check_name = str(check)
        if check_name == "column_in_dataframe":
            name = str(group["failure_case"].iloc[0])
            check_name = "column is missing"
        examples = [
            python_value(value) for value in group["failure_case"].head(_EXAMPLES_PER_CHECK)
        ]
        failures.append(
            ValidationFailure(
                column=name,
                check=check_name,
                failed_rows=len(group),
                examples=[] if check_name == "column is missing" else examples,
            )
        )
    return failures
