"""The rules for one JSON value of a feature: JSON keeps its types."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tabops.schema import ColumnSpec, Kind

INT64 = 2.0**63
FLOAT_MAX = 1.7976931348623157e308


def _is_number(value: Any) -> bool:
    """A JSON number: int or float, not bool (Python's bool is an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: float) -> bool:
    """A finite float, or an int a float can hold (a larger one is not a usable number)."""
    if isinstance(value, int):
        return abs(value) <= FLOAT_MAX
    return math.isfinite(value)


Checker = Callable[[Any], tuple[Any, str | None]]
"""One JSON value of a non-null feature -> (the value to use, or the problem with it)."""


def text_value(value: Any) -> tuple[Any, str | None]:
    """A category: text, as it is."""
    if type(value) is str:
        return value, None
    return (value, None) if isinstance(value, str) else (None, f"{value!r} is not text")


def _flag(value: Any) -> tuple[Any, str | None]:
    if value is True or value is False:
        return int(value), None
    if _is_number(value) and value in (0, 1):
        return int(value), None
    return None, f"{value!r} is not 0, 1, true or false"


def _number(value: Any) -> tuple[Any, str | None]:
    if type(value) is float and value - value == 0:  # finite: inf - inf and nan - nan are nan
        return value, None
    if not _is_number(value) or not _is_finite(value):
        return None, f"{value!r} is not a number"
    return value, None


def _whole(value: Any) -> tuple[Any, str | None]:
    if type(value) is int and -INT64 <= value < INT64:
        return value, None
    if not _is_number(value) or not _is_finite(value):
        return None, f"{value!r} is not a number"
    if isinstance(value, float) and not value.is_integer():
        return None, f"{value!r} is not a whole number"
    if not -INT64 <= value < INT64:
        return None, f"{value!r} is beyond the 64-bit integer range"
    return int(value), None


CHECKERS: dict[Kind, Checker] = {
    Kind.NUMERIC: _number,
    Kind.INTEGER: _whole,
    Kind.BOOLEAN: _flag,
    Kind.CATEGORICAL: text_value,
}


def check_value(column: ColumnSpec, value: Any) -> tuple[Any, str | None]:
    """One JSON value of a non-null feature: (the value to use, or the problem with it)."""
    return CHECKERS.get(column.kind, text_value)(value)
