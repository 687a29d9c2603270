"""The feature spec: what each column of a dataset is, and how to infer it from data."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from tabops.errors import DataError

_ID_NAME = re.compile(r"^(id|.*[_\s]id|uuid|guid|key|index|unnamed:\s*\d+)$", re.IGNORECASE)
_CAMEL_ID_NAME = re.compile(r"^.*[a-z0-9](Id|ID)$")
# A date or a time of day: 2015-01-01, 1/1/15, 01.02.2020, 12:30. Ordinals such as "1st"
# parse as dates in pandas' mixed mode, so the shape is required as well as parsing.
_DATE_SHAPE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{1,2}:\d{2}")
MAX_CATEGORIES = 50
_DATETIME_PARSE_SHARE = 0.95


class Role(StrEnum):
    """What a column is for."""

    FEATURE = "feature"
    TARGET = "target"
    EXCLUDED = "excluded"


class Kind(StrEnum):
    """What values a column holds."""

    NUMERIC = "numeric"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"
    DATETIME = "datetime"
    TEXT = "text"


class ColumnSpec(BaseModel):
    """One column of the dataset as the model sees it."""

    name: str
    role: Role = Role.FEATURE
    kind: Kind
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    categories: list[str] | None = None
    reason: str | None = Field(default=None, description="Why an excluded column is excluded.")
    impute: Literal["median", "mean", "zero", "most_frequent"] | None = Field(
        default=None,
        description="How the model fills a gap: median (numbers) or most_frequent "
        "(categories) when unset.",
    )


class FeatureSpec(BaseModel):
    """Every column of a dataset, in order, with its role and kind."""

    columns: list[ColumnSpec]

    @property
    def features(self) -> list[ColumnSpec]:
        """The columns the model takes as input, in order."""
        return [column for column in self.columns if column.role is Role.FEATURE]

    @property
    def feature_names(self) -> list[str]:
        """Names of the model's input columns, in order."""
        return [column.name for column in self.features]

    def column(self, name: str) -> ColumnSpec:
        """The spec of one column; ``KeyError`` when there is none."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


class SchemaInference(BaseModel):
    """The result of ``infer_schema``: the spec plus what the user should hear about."""

    spec: FeatureSpec
    warnings: list[str]


def infer_schema(frame: pd.DataFrame, target: str) -> SchemaInference:
    """Infer the role, kind, nullability, range and categories of every column.

    Id-like, constant, duplicated, datetime and free-text columns are kept in the spec but
    excluded from the features, each with a reason and a warning.

    Args:
        frame: the whole dataset, target included.
        target: name of the binary target column.

    Raises:
        DataError: the target is missing or not binary, or no usable feature remains.
    """
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} is not in the data; columns are {list(frame.columns)}"
        )
    classes = frame[target].dropna().unique()
    if len(classes) != 2:
        raise DataError(
            f"target column {target!r} must hold exactly two classes, found {len(classes)}"
        )
    columns: list[ColumnSpec] = []
    warnings: list[str] = []
    seen: dict[int, str] = {}
    for name in frame.columns:
        series = frame[name]
        if name == target:
            columns.append(ColumnSpec(name=str(name), role=Role.TARGET, kind=_infer_kind(series)))
            continue
        column = _infer_column(str(name), series)
        if column.role is Role.FEATURE:
            fingerprint = int(pd.util.hash_pandas_object(series, index=False).sum())
            twin = seen.get(fingerprint)
            if twin is not None and series.equals(frame[twin]):
                column.role = Role.EXCLUDED
                column.reason = f"an exact copy of column {twin!r}"
            else:
                seen[fingerprint] = str(name)
        if column.role is Role.EXCLUDED:
            warnings.append(f"column {name!r} excluded: {column.reason}")
        columns.append(column)
    spec = FeatureSpec(columns=columns)
    if not spec.features:
        raise DataError("no usable feature column is left after excluding the ones listed")
    return SchemaInference(spec=spec, warnings=warnings)


def _infer_column(name: str, series: pd.Series) -> ColumnSpec:
    kind = _infer_kind(series)
    non_null = series.dropna()
    unique = int(non_null.nunique())
    rows = len(series)
    column = ColumnSpec(name=name, kind=kind, nullable=bool(series.isna().any()))
    if unique <= 1:
        return _excluded(column, "constant: it holds a single value")
    if _is_id_like(name, series, kind, unique, rows):
        return _excluded(column, "id-like: a key that identifies rows, not a property of them")
    if kind is Kind.DATETIME:
        return _excluded(column, "a date or time; derive features from it instead")
    if kind is Kind.TEXT:
        return _excluded(column, f"free text or a key with {unique} distinct values")
    if kind in (Kind.NUMERIC, Kind.INTEGER):
        column.minimum = float(non_null.min())
        column.maximum = float(non_null.max())
    if kind is Kind.CATEGORICAL:
        column.categories = sorted(str(value) for value in non_null.unique())
    return column


def _excluded(column: ColumnSpec, reason: str) -> ColumnSpec:
    column.role = Role.EXCLUDED
    column.reason = reason
    return column


def _infer_kind(series: pd.Series) -> Kind:
    non_null = series.dropna()
    if pd.api.types.is_bool_dtype(series):
        return Kind.BOOLEAN
    if pd.api.types.is_datetime64_any_dtype(series):
        return Kind.DATETIME
    if pd.api.types.is_numeric_dtype(series):
        if len(non_null) and set(np.unique(non_null.to_numpy())) <= {0, 1}:
            return Kind.BOOLEAN
        if pd.api.types.is_integer_dtype(series):
            return Kind.INTEGER
        return Kind.NUMERIC
    strings = non_null.astype(str)
    if len(strings) and _parses_as_datetime(strings):
        return Kind.DATETIME
    if strings.nunique() <= MAX_CATEGORIES:
        return Kind.CATEGORICAL
    return Kind.TEXT


def _parses_as_datetime(strings: pd.Series) -> bool:
    sample = strings.sample(n=min(len(strings), 500), random_state=0)
    if float(sample.str.contains(_DATE_SHAPE).mean()) < _DATETIME_PARSE_SHARE:
        return False
    # Dates far in the future (year 3021) overflow pandas' nanosecond range and become NaT:
    # they still count as dates, so a column of them is not mistaken for text.
    years = sample.str.extract(r"^(\d{4})-\d{1,2}-\d{1,2}", expand=False)
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    share = float((parsed.notna() | years.notna()).mean())
    return share >= _DATETIME_PARSE_SHARE


def _is_id_like(name: str, series: pd.Series, kind: Kind, unique: int, rows: int) -> bool:
    if rows == 0:
        return False
    share_unique = unique / rows
    if (_ID_NAME.match(name) or _CAMEL_ID_NAME.match(name)) and share_unique > 0.5:
        return True
    if kind is Kind.INTEGER and unique == rows:
        values = np.sort(series.dropna().to_numpy())
        return bool(np.all(np.diff(values) == 1))
    return kind in (Kind.TEXT, Kind.CATEGORICAL) and unique == rows and rows > MAX_CATEGORIES


def python_value(value: Any) -> Any:
    """Turn a numpy or pandas scalar into the plain Python value JSON and YAML expect."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return python_value(value.item())
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def coerce_frame(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The feature columns of ``frame`` in spec order, with the dtypes the model was fit on.

    Numbers become float64 and categories become strings, so training and serving feed the
    pipeline identical dtypes whatever the source (CSV, Parquet, JSON).
    """
    data: dict[str, Any] = {}
    for column in spec.features:
        series = frame[column.name]
        if column.kind is Kind.CATEGORICAL:
            data[column.name] = (
                series.astype(object)
                .where(series.notna(), None)
                .map(lambda value: None if value is None else str(value))
            )
        else:
            data[column.name] = pd.to_numeric(series, errors="coerce").astype("float64")
    return pd.DataFrame(data, index=frame.index)
