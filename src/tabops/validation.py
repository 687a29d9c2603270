"""The one validator of features: the same rules for every way data reaches a model.

``tabops validate``, training tables, API records, batch files and jobs all check values
here, so a row refused by one is refused by all. The rules, per feature of the spec:

- it is present; it may be null (a gap) only when the spec says it is nullable;
- a ``numeric`` value is a finite number, an ``integer`` a whole number within 64 bits
  (``3.0`` is 3), a ``boolean`` one of 0, 1, true and false (``0.0`` and ``1.0`` too);
- a ``categorical`` value is text.

JSON records keep their types: ``"3"`` is text, so it is not a number, and ``true`` is not
a number either. A file's cells are text: a cell that reads as a number counts as one, and
``true``/``false`` (any case) count as flags.

A number outside the training range, or a category never seen in training, is accepted:
new data goes beyond a sample's extremes without being wrong, and refusing it would make a
model unusable as the world drifts. Such values are *noted* (``notes``), for ``tabops
validate`` to report and for monitoring to count; the model treats an unseen category as
none of the known ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from pydantic import BaseModel

from tabops.errors import Problem
from tabops.schema import ColumnSpec, FeatureSpec, Kind, Role, python_value

_INT64 = 2.0**63
_FLOAT_MAX = 1.7976931348623157e308
_EXAMPLES_PER_CHECK = 5
_NUMBER = "is a number"
_WHOLE = "is a whole number"
_FLAG = "is 0, 1, true or false"
_TEXT = "is text"
_NOT_NULL = "not_null"
_MISSING = "column is missing"
_IN_RANGE = "outside the training range"
_KNOWN = "a category not seen in training"
Found = tuple[int, str, str, str, Any]
"""(row position, column, check, message, value)"""


def _is_number(value: Any) -> bool:
    """A JSON number: int or float, not bool (Python's bool is an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: float) -> bool:
    """A finite float, or an int a float can hold (a larger one is not a usable number)."""
    if isinstance(value, int):
        return abs(value) <= _FLOAT_MAX
    return math.isfinite(value)


Checker = Callable[[Any], tuple[Any, str | None]]
"""One JSON value of a non-null feature -> (the value to use, or the problem with it)."""


def _text(value: Any) -> tuple[Any, str | None]:
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
    if type(value) is int and -_INT64 <= value < _INT64:
        return value, None
    if not _is_number(value) or not _is_finite(value):
        return None, f"{value!r} is not a number"
    if isinstance(value, float) and not value.is_integer():
        return None, f"{value!r} is not a whole number"
    if not -_INT64 <= value < _INT64:
        return None, f"{value!r} is beyond the 64-bit integer range"
    return int(value), None


CHECKERS: dict[Kind, Checker] = {
    Kind.NUMERIC: _number,
    Kind.INTEGER: _whole,
    Kind.BOOLEAN: _flag,
    Kind.CATEGORICAL: _text,
}


def check_value(column: ColumnSpec, value: Any) -> tuple[Any, str | None]:
    """One JSON value of a non-null feature: (the value to use, or the problem with it)."""
    return CHECKERS.get(column.kind, _text)(value)


@dataclass(frozen=True)
class RowProblem:
    """What is wrong with one cell of a file: its row (numbered from 1), column and problem."""

    row: int
    column: str
    problem: str

    def as_problem(self) -> Problem:
        """The problem with its place written ``row 5.age``, as reports and the API show it."""
        return Problem(f"row {self.row}.{self.column}", self.problem)


@dataclass(frozen=True)
class FrameCheck:
    """What ``check_frame`` found: which rows break a rule, and every problem and note.

    ``problems`` and ``notes`` hold ``(row position, column, check, message, value)``.
    """

    invalid: np.ndarray
    problems: list[Found] = field(default_factory=list)
    notes: list[Found] = field(default_factory=list)


class FeatureValidator:
    """The rules of one feature spec, for JSON records and for frames read from files."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.features = spec.features
        self._names = {column.name for column in self.features}
        self._plan = [
            (column.name, column.nullable, CHECKERS.get(column.kind, _text))
            for column in self.features
        ]

    def check_record(self, document: Any, where: str = "") -> tuple[dict[str, Any], list[Problem]]:
        """A JSON record's feature values (absent = None), or every problem with it.

        ``where`` prefixes field paths (``records[3]``).
        """
        if not isinstance(document, Mapping):
            return {}, [
                Problem(where or "body", f"expected an object, got {type(document).__name__}")
            ]
        prefix = f"{where}." if where else ""
        problems = []
        if len(document) > len(self._names) or not self._names.issuperset(document):
            problems = [
                Problem(f"{prefix}{key}", "unknown field")
                for key in document
                if key not in self._names
            ]
        record: dict[str, Any] = {}
        for name, nullable, checker in self._plan:
            value = document.get(name)
            if value is None:
                if not nullable:
                    absent = name not in document
                    problems.append(
                        Problem(f"{prefix}{name}", "field required" if absent else "is empty")
                    )
                record[name] = None
                continue
            value, problem = checker(value)
            if problem is not None:
                problems.append(Problem(f"{prefix}{name}", problem))
            record[name] = value
        return (record, []) if not problems else ({}, problems)

    def check_frame(
        self, frame: pd.DataFrame, *, require_target: bool = False, notes: bool = True
    ) -> FrameCheck:
        """Every row of a frame, column by column; columns it lacks are skipped.

        See ``missing_columns`` for those. ``notes`` False skips looking for values outside
        what training saw (file scoring does not need them).
        """
        invalid = np.zeros(len(frame), dtype=bool)
        problems: list[Found] = []
        noted: list[Found] = []
        columns = [
            c
            for c in self.spec.columns
            if c.role is Role.FEATURE or (require_target and c.role is Role.TARGET)
        ]
        for column in columns:
            if column.name not in frame.columns:
                continue
            series = frame[column.name]
            bad, found, numbers = _check_series(column, series)
            invalid |= bad
            problems.extend(found)
            if notes:
                noted.extend(
                    _notes(column, series, numbers, ~bad & ~file_gaps(series, blank_text=True))
                )
        problems.sort(key=lambda item: item[0])
        return FrameCheck(invalid, problems, noted)

    def missing_columns(self, frame: pd.DataFrame, *, require_target: bool = False) -> list[str]:
        """Feature columns (and the target, when required) the frame lacks, in spec order."""
        return [
            c.name
            for c in self.spec.columns
            if (c.role is Role.FEATURE or (require_target and c.role is Role.TARGET))
            and c.name not in frame.columns
        ]


def _check_series(
    column: ColumnSpec, series: pd.Series
) -> tuple[np.ndarray, list[Found], np.ndarray | None]:
    """One column of a file: its invalid rows, their problems, and its cells as numbers."""
    name = column.name
    gaps = file_gaps(series, blank_text=column.kind is not Kind.CATEGORICAL)
    bad = np.zeros(len(series), dtype=bool)
    if column.kind is Kind.CATEGORICAL:
        check, numbers = _TEXT, None
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
            (row, name, _NOT_NULL, "is empty", None) for row in np.flatnonzero(gaps).tolist()
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
        return ~((numbers == 0) | (numbers == 1)), _FLAG
    if kind is Kind.INTEGER:
        whole = finite & (np.mod(numbers, 1, where=finite, out=np.zeros_like(numbers)) == 0)
        return flags | ~whole | (
            np.abs(numbers, where=finite, out=np.zeros_like(numbers)) >= _INT64
        ), _WHOLE
    return flags | ~finite, _NUMBER


def _message(kind: Kind, value: Any, numbers: np.ndarray | None, row: int) -> str:
    shown = python_value(value)
    if kind is Kind.BOOLEAN:
        return f"{shown!r} is not 0, 1, true or false"
    if numbers is None or not math.isfinite(numbers[row]) or isinstance(shown, bool):
        return f"{shown!r} is not a number"
    if kind is Kind.INTEGER and not float(numbers[row]).is_integer():
        return f"{shown!r} is not a whole number"
    return f"{shown!r} is beyond the 64-bit integer range"


def _notes(
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
                _KNOWN,
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
            f"{_IN_RANGE} [{low:g}, {high:g}]",
            f"{numbers[row]:g} is outside the training range [{low:g}, {high:g}]",
            float(numbers[row]),
        )
        for row in np.flatnonzero(outside).tolist()
    ]


class ValidationFailure(BaseModel):
    """One failed check on one column, with how many rows failed and a few examples."""

    column: str | None
    check: str
    failed_rows: int
    examples: list[Any]


class ValidationReport(BaseModel):
    """The outcome of ``validate_frame``: failures refuse the table, notes do not."""

    rows: int
    failures: list[ValidationFailure]
    notes: list[ValidationFailure] = []
    unknown_columns: list[str]

    @property
    def is_valid(self) -> bool:
        """True when every check passed (notes aside)."""
        return not self.failures


def validate_frame(
    frame: pd.DataFrame, spec: FeatureSpec, *, require_target: bool = False
) -> ValidationReport:
    """Check every feature column of ``frame`` against ``spec`` and collect all failures."""
    validator = FeatureValidator(spec)
    known = {column.name for column in spec.columns}
    unknown = [str(name) for name in frame.columns if name not in known]
    missing = validator.missing_columns(frame, require_target=require_target)
    found = validator.check_frame(frame, require_target=require_target)
    failures = [
        ValidationFailure(column=name, check=_MISSING, failed_rows=len(frame), examples=[])
        for name in missing
    ]
    failures += _summarise(found.problems)
    return ValidationReport(
        rows=len(frame), failures=failures, notes=_summarise(found.notes), unknown_columns=unknown
    )


def _summarise(items: Sequence[Found]) -> list[ValidationFailure]:
    groups: dict[tuple[str, str], list[Any]] = {}
    for _row, column, check, _message_text, value in items:
        groups.setdefault((column, check), []).append(value)
    return [
        ValidationFailure(
            column=column,
            check=check,
            failed_rows=len(values),
            examples=values[:_EXAMPLES_PER_CHECK],
        )
        for (column, check), values in groups.items()
    ]
