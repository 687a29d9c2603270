"""Row features: computed from columns of the same row, whole columns at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabops.errors import DataError, Problem
from tabops.features.definitions import Difference, Flag, IsMissing, Ratio, TimeBetween
from tabops.features.window import to_datetimes

RowDefinition = TimeBetween | Ratio | Difference | Flag | IsMissing
_DAYS_PER_YEAR = 365.2425  # the Gregorian mean year


def compute_row_feature(frame: pd.DataFrame, feature: RowDefinition) -> np.ndarray:
    """The values of one row feature for every row of ``frame``.

    Raises:
        DataError: a column the feature reads is missing.
    """
    absent = [column for column in feature.inputs() if column not in frame.columns]
    if absent:
        raise DataError(
            f"feature {feature.name!r} reads column(s) {', '.join(map(repr, absent))}, "
            "which the table lacks",
            [Problem(column, "column is missing") for column in absent],
        )
    if isinstance(feature, TimeBetween):
        return _time_between(frame, feature)
    if isinstance(feature, Ratio):
        numerator = _numbers(frame[feature.numerator])
        denominator = _numbers(frame[feature.denominator])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denominator != 0, numerator / denominator, np.nan)
    if isinstance(feature, Difference):
        difference: np.ndarray = _numbers(frame[feature.left]) - _numbers(frame[feature.right])
        return difference
    if isinstance(feature, Flag):
        column = frame[feature.column]
        flagged = column.isin(feature.true_values).to_numpy(dtype=float)
        return np.where(column.isna().to_numpy(), np.nan, flagged)
    missing: np.ndarray = frame[feature.column].isna().to_numpy().astype(float)
    return missing


def _time_between(frame: pd.DataFrame, feature: TimeBetween) -> np.ndarray:
    start = to_datetimes(frame[feature.start], feature.start)
    end = to_datetimes(frame[feature.end], feature.end)
    unknown = (start.isna() | end.isna()).to_numpy()
    days = (end - start).to_numpy().astype("timedelta64[us]").astype("i8") / 86_400e6
    if feature.kind == "days_between":
        value = np.floor(days) if feature.whole else days
    elif feature.whole:
        # calendar years, as an age is counted: the birthday itself completes a year
        years = (end.dt.year - start.dt.year).to_numpy(dtype=float)
        before_anniversary = (end.dt.month * 100 + end.dt.day) < (
            start.dt.month * 100 + start.dt.day
        )
        value = years - before_anniversary.to_numpy(dtype=float)
    else:
        value = days / _DAYS_PER_YEAR
    value = np.where(unknown, np.nan, value)
    if feature.min is not None:
        value = np.where(value < feature.min, np.nan, value)
    if feature.max is not None:
        value = np.where(value > feature.max, np.nan, value)
    return np.asarray(value, dtype=float)


def _numbers(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        raise DataError(f"column {column.name!r} holds dates; use days_between")
    return pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
