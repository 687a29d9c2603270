"""The rules for a file's cells, a column at a time: cells are text that may read as numbers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from tabops.schema import ColumnSpec, Kind, python_value
from tabops.validation.values import INT64

NUMBER = "is a number"
WHOLE = "is a whole number"
FLAG = "is 0, 1, true or false"
TEXT = "is text"
NOT_NULL = "not_null"
IN_RANGE = "outside the training range"
UNSEEN = "a category not seen in training"
Found = tuple[int, str, str, str, Any]
"""(row position, column, check, message, value)"""


def check_series(
    column: ColumnSpec, series: pd.Series
) -> tuple[np.ndarray, list[Found], np.ndarray | None]:
    """One column of a file: its invalid rows, their problems, and its cells as numbers."""
    name = column.name
    gaps = file_gaps(series, blank_text=column.kind is not Kind.CATEGORICAL)
    bad = np.zeros(len(series), dtype=bool)
    if column.kind is Kind.CATEGORICAL:
        check, numbers = TEXT, None
    else:
        numbers, flags = _numbers(series, column.kind is Kind.BOOLEAN)
        bad, check = _number_rules(column.kind, numbers, flags)
        bad &= ~gaps
    problems = [
        (
            row,
            name,
            check,
            _message(column.kind, series.iloc[row], numbers, row),
            python_value(series.iloc[row]),
        )
        for row in np.flatnonzero(bad).tolist()
    ]
    if not column.nullable:
        problems.extend(
            (row, name, NOT_NULL, "is empty", None) for row in np.flatnonzero(gaps).tolist()
        )
        bad |= gaps
    return bad, problems, numbers


def file_gaps(series: pd.Series, *, blank_text: bool) -> np.ndarray:
    """Which cells of a file's column are gaps: missing, or (``blank_text``) blank text.

    CSV writers quote an empty text cell (``""``), which pandas reads back as text: in a
    column of numbers it is still an empty cell, as the encoder reads it. In a column of
    categories, text is a category, blank or not.
    """
    gaps = series.isna().to_numpy()
    if blank_text and (series.dtype == object or pd.api.types.is_string_dtype(series)):
        blank = series.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
        gaps = gaps | blank
    return gaps


def _numbers(series: pd.Series, flag: bool) -> tuple[np.ndarray, np.ndarray]:
    """The column as float64 (NaN where a cell is not a number) and which cells were bools."""
    if is_bool_dtype(series):
        return np.array(series, dtype=np.float64), series.notna().to_numpy()
    if is_numeric_dtype(series):
        return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy(), np.zeros(
            len(series), dtype=bool
        )
    cells = series.to_numpy(dtype=object)
    is_flag = np.fromiter(
        (isinstance(v, bool | np.bool_) for v in cells), dtype=bool, count=len(cells)
    )
    text = series.where(~is_flag).astype(object)
    if flag:  # text true/false in a flag column, as CSV writes booleans
        lowered = text.map(lambda v: v.strip().lower() if isinstance(v, str) else v)
        text = lowered.replace({"true": 1.0, "false": 0.0})
    numbers = np.array(pd.to_numeric(text, errors="coerce"), dtype=np.float64)
    numbers[is_flag] = cells[is_flag].astype(float)
    return numbers, is_flag


def _number_rules(kind: Kind, numbers: np.ndarray, flags: np.ndarray) -> tuple[np.ndarray, str]:
    """Which cells break the kind's rule, and the rule's name."""
    finite = np.isfinite(numbers)
    if kind is Kind.BOOLEAN:
        return ~((numbers == 0) | (numbers == 1)), FLAG
    if kind is Kind.INTEGER:
        whole = finite & (np.mod(numbers, 1, where=finite, out=np.zeros_like(numbers)) == 0)
        return flags | ~whole | (
            np.abs(numbers, where=finite, out=np.zeros_like(numbers)) >= INT64
        ), WHOLE
    return flags | ~finite, NUMBER


def _message(kind: Kind, value: Any, numbers: np.ndarray | None, row: int) -> str:
    shown = python_value(value)
    if kind is Kind.BOOLEAN:
        return f"{shown!r} is not 0, 1, true or false"
    if numbers is None or not math.isfinite(numbers[row]) or isinstance(shown, bool):
        return f"{shown!r} is not a number"
    if kind is Kind.INTEGER and not float(numbers[row]).is_integer():
        return f"{shown!r} is not a whole number"
    return f"{shown!r} is beyond the 64-bit integer range"


def notes_of(
    column: ColumnSpec, series: pd.Series, numbers: np.ndarray | None, valid: np.ndarray
) -> list[Found]:
    """Accepted values outside what training saw: out of range, or an unseen category."""
    if column.kind is Kind.CATEGORICAL:
        if column.categories is None:
            return []
        known = set(column.categories)
        unseen = valid & ~series.astype(object).map(lambda v: str(v) in known).to_numpy(dtype=bool)
        return [
            (
                row,
                column.name,
                UNSEEN,
                f"{python_value(series.iloc[row])!r} was not seen in training",
                python_value(series.iloc[row]),
            )
            for row in np.flatnonzero(unseen).tolist()
        ]
    if numbers is None or column.minimum is None or column.maximum is None:
        return []
    low, high = column.minimum, column.maximum
    outside = valid & ((numbers < low) | (numbers > high))
    return [
        (
            row,
            column.name,
            f"{IN_RANGE} [{low:g}, {high:g}]",
            f"{numbers[row]:g} is outside the training range [{low:g}, {high:g}]",
            float(numbers[row]),
        )
        for row in np.flatnonzero(outside).tolist()
    ]
