"""The input tensors of an Open Inference Protocol request, read and checked against features.

A tensor's values are checked with the rules of ``tabops.validation`` (the v1 records'
rules): a few JSON values one by one, as v1 does; many numbers, and every binary tensor,
at once with numpy. Each problem names the tensor and the row.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tabops.errors import BatchTooLargeError, InvalidInputError, InvalidRequestError, Problem
from tabops.schema import ColumnSpec, Kind
from tabops.server.codecs.v2_binary import BYTES, FIXED_TYPES, BinaryReader
from tabops.validation import check_value
from tabops.validation.values import FLOAT_MAX, INT64

Column = list[Any] | np.ndarray
"""A feature's checked values: Python values (None for a gap), or float64 (NaN for a gap)."""
_VECTOR_ROWS = 64  # from this many JSON values, checking them with numpy is cheaper
_NUMBERS = frozenset(FIXED_TYPES) - {"BOOL"}
ACCEPTED = {
    Kind.NUMERIC: _NUMBERS,
    Kind.INTEGER: _NUMBERS,
    Kind.BOOLEAN: _NUMBERS | {"BOOL"},
}
"""The datatypes a number feature's tensor may have (a category's is BYTES)."""
_NUMBER_TYPES = frozenset((float, int))
_FLAG_TYPES = frozenset((float, int, bool))


@dataclass(frozen=True, slots=True)
class Tensor:
    """One input tensor as sent: JSON values, an array read from binary data, or BYTES."""

    name: str
    datatype: str
    shape: list[int]
    values: list[Any] | np.ndarray

    @property
    def field(self) -> str:
        """How problems name the tensor."""
        return f"inputs.{self.name}"

    def numbers(self) -> np.ndarray:
        """The values as float64 (one ``[n, k]`` tensor of numbers).

        Raises:
            InvalidInputError: a JSON value is not a number, naming its position.
        """
        if isinstance(self.values, np.ndarray):
            return self.values.astype(np.float64, copy=False)
        if _are_numbers(self.values):
            try:
                return np.array(self.values, dtype=np.float64)
            except OverflowError:  # an integer beyond any float: named below
                pass
        problems = [
            Problem(f"{self.field}[{index}]", f"{value!r} is not a number")
            for index, value in enumerate(self.values)
            if not _is_number(value) or not abs(value) <= FLOAT_MAX
        ]
        raise InvalidInputError("some input values are invalid", problems)

    def column(self, feature: ColumnSpec, problems: list[Problem]) -> Column:
        """The values checked as ``feature``'s; each problem is added to ``problems``."""
        values = self.values
        field = self.field
        if isinstance(values, np.ndarray):
            return check_numbers(feature, values.astype(np.float64), _rows(field), problems)
        if feature.kind is Kind.CATEGORICAL and self.datatype == BYTES:
            values = [_text(value) for value in values]
        elif len(values) >= _VECTOR_ROWS and _are_numbers(values, feature.kind is Kind.BOOLEAN):
            try:
                array = np.array(values, dtype=np.float64)
            except OverflowError:  # an integer beyond any float: checked one by one below
                pass
            else:
                return check_numbers(feature, array, _rows(field), problems)
        checked: list[Any] = []
        for row, value in enumerate(values):
            if value is None:
                if not feature.nullable:
                    problems.append(Problem(f"{field}[{row}]", "is empty"))
                checked.append(None)
                continue
            value, problem = check_value(feature, value)
            if problem is not None:
                problems.append(Problem(f"{field}[{row}]", problem))
            checked.append(value)
        return checked


def read_tensor(index: int, item: Any, reader: BinaryReader, max_rows: int) -> Tensor:
    """The ``index``-th input of a request, its data read from JSON or from ``reader``.

    Raises:
        InvalidRequestError: the tensor's name, datatype, shape or data size is wrong.
        BatchTooLargeError: it has more than ``max_rows`` rows.
    """
    if not isinstance(item, dict):
        raise _invalid(f"inputs[{index}]", "not an object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid(f"inputs[{index}].name", "field required: the tensor's name")
    field = f"inputs.{name}"
    datatype = item.get("datatype")
    if not isinstance(datatype, str) or (datatype != BYTES and datatype not in FIXED_TYPES):
        shown = repr(datatype) if isinstance(datatype, str) else type(datatype).__name__
        raise _invalid(f"{field}.datatype", f"{shown[:40]} is not a datatype of the protocol")
    shape = item.get("shape")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(type(size) is int and size >= 0 for size in shape)
    ):
        raise _invalid(f"{field}.shape", f"{shape!r}: expected [rows] or [rows, columns]")
    if shape[0] > max_rows:
        raise BatchTooLargeError(
            f"{shape[0]} rows exceed the limit of {max_rows}; split the request",
            [Problem(f"{field}.shape", f"at most {max_rows} rows")],
        )
    if shape[0] == 0:
        raise InvalidInputError("the request holds no rows", [Problem(f"{field}.shape", "0 rows")])
    count = math.prod(shape)
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _invalid(f"{field}.parameters", "not an object")
    if "binary_data_size" in parameters:
        values = reader.read(field, datatype, count, parameters["binary_data_size"])
        return Tensor(name, datatype, shape, values)
    data = item.get("data")
    if not isinstance(data, list):
        raise _invalid(f"{field}.data", "field required: a list of values, or binary data")
    if data and isinstance(data[0], list):  # nested rows, as the shape gives them
        data = list(itertools.chain.from_iterable(_nested(field, data)))
    if len(data) != count:
        raise _invalid(f"{field}.data", f"holds {len(data)} values, shape {shape} needs {count}")
    return Tensor(name, datatype, shape, data)


@dataclass(frozen=True, slots=True)
class MatrixRules:
    """What one ``[n, k]`` tensor must satisfy to be a version's features, worked out once.

    ``refusal`` says why the version takes no such tensor (a category among its features).
    """

    features: list[ColumnSpec]
    whole: np.ndarray  # the positions of whole-number features
    flags: np.ndarray  # the positions of 0/1 features
    refusal: str | None

    @classmethod
    def of(cls, features: list[ColumnSpec]) -> MatrixRules:
        """The rules of ``features``, in spec order."""
        whole = [p for p, column in enumerate(features) if column.kind is Kind.INTEGER]
        flags = [p for p, column in enumerate(features) if column.kind is Kind.BOOLEAN]
        refusal = None
        if any(column.kind not in ACCEPTED for column in features):
            refusal = "one [n, k] tensor takes numbers only; send one tensor per feature"
        positions = np.array(whole, dtype=np.intp), np.array(flags, dtype=np.intp)
        return cls(features, *positions, refusal)

    def is_valid(self, matrix: np.ndarray) -> bool:
        """Whether every value is valid for its feature, with no gaps: the usual case."""
        if not np.isfinite(matrix).all():
            return False
        if len(self.whole):
            numbers = matrix[:, self.whole]
            if not ((numbers == np.floor(numbers)).all() and (np.abs(numbers) < INT64).all()):
                return False
        if len(self.flags):
            numbers = matrix[:, self.flags]
            return bool(((numbers == 0) | (numbers == 1)).all())
        return True


def checked_matrix(rules: MatrixRules, tensor: Tensor) -> np.ndarray:
    """One ``[n, k]`` tensor of numbers as a float64 matrix, every value checked (NaN: a gap).

    Raises:
        InvalidRequestError: the tensor cannot hold the features (datatype, width, a category).
        InvalidInputError: values that do not fit their feature, each named by row and column.
    """
    field = tensor.field
    features = rules.features
    problem = rules.refusal
    if problem is None and tensor.datatype not in ("FP32", "FP64"):
        problem = f"datatype {tensor.datatype}: an [n, k] tensor is FP32 or FP64"
    elif problem is None and tensor.shape[1] != len(features):
        problem = f"shape {tensor.shape}: the model takes {len(features)} features"
    if problem is not None:
        raise InvalidRequestError(f"{field} does not fit the model", [Problem(field, problem)])
    matrix = tensor.numbers().reshape(tensor.shape)
    if rules.is_valid(matrix):
        return matrix
    problems: list[Problem] = []
    for position, column in enumerate(features):

        def place(row: int, position: int = position, name: str = column.name) -> str:
            return f"{field}[{row}, {position}] ({name})"

        check_numbers(column, matrix[:, position], place, problems)
    if problems:
        raise InvalidInputError("some input values are invalid", problems)
    return matrix


def check_numbers(
    feature: ColumnSpec, values: np.ndarray, place: Callable[[int], str], problems: list[Problem]
) -> np.ndarray:
    """Numbers checked as ``feature``'s, all at once; NaN is a gap, allowed when nullable."""
    gaps = np.isnan(values)
    bad = ~np.isfinite(values)
    if feature.nullable:
        bad &= ~gaps
    rule = None
    finite = ~bad & ~gaps
    if feature.kind is Kind.INTEGER:
        rule = finite & ((values != np.floor(values)) | (np.abs(values) >= INT64))
    elif feature.kind is Kind.BOOLEAN:
        rule = finite & (values != 0) & (values != 1)
    if rule is not None:
        bad |= rule
    if bad.any():
        for row in np.flatnonzero(bad).tolist():
            problems.append(Problem(place(row), _message(feature, float(values[row]))))
    return values


def _message(feature: ColumnSpec, value: float) -> str:
    if math.isnan(value):
        return "is empty"
    if not math.isfinite(value):
        return f"{value!r} is not a number"
    if feature.kind is Kind.BOOLEAN:
        shown = int(value) if value.is_integer() else value  # as the JSON value was written
        return f"{shown!r} is not 0, 1, true or false"
    if not value.is_integer():
        return f"{value!r} is not a whole number"
    return f"{value!r} is beyond the 64-bit integer range"


def _rows(field: str) -> Callable[[int], str]:
    return lambda row: f"{field}[{row}]"


def _text(value: Any) -> Any:
    """A BYTES element as text (JSON sends text already); bytes that are not UTF-8 as is."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    return value


def _is_number(value: Any) -> bool:
    return type(value) is float or type(value) is int


def _are_numbers(values: list[Any], flags: bool = False) -> bool:
    """Whether every value is a JSON number (or, for a flag, a number or true or false)."""
    return {type(value) for value in values} <= (_FLAG_TYPES if flags else _NUMBER_TYPES)


def _nested(field: str, data: list[Any]) -> list[list[Any]]:
    if not all(isinstance(row, list) for row in data):
        raise _invalid(f"{field}.data", "mixes rows (lists) and values")
    return data


def _invalid(field: str, problem: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field} is invalid", [Problem(field, problem)])
