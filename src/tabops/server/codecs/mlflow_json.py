"""MLflow's JSON bodies: rows under one of four format keys, as validated records.

``dataframe_split`` (columns, data, an optional index), ``dataframe_records`` (records),
``instances`` (records, or rows of values in feature order) and ``inputs`` (those, or
``{column: [values]}``) all become records checked one by one, as the v1 batch route checks
them; a problem is named by where it is (``dataframe_split.data[3].age``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tabops.errors import BatchTooLargeError, InvalidInputError, Problem
from tabops.server.codecs import v1
from tabops.validation import FeatureValidator

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
"""The keys a JSON body may hold its rows under: exactly one of them."""
PREDICT_METHODS = ("predict", "predict_proba", "decision")
MAX_PROBLEMS = 50
"""Problems named in one answer; a batch with a bad column would otherwise name every row."""

_PARAMS = "params"
_METHOD = "predict_method"


def decode_json(
    validator: FeatureValidator, names: Sequence[str], body: bytes, max_rows: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The validated records of a JSON body, and the predict method its params name.

    ``names`` are the features in order, for rows written as lists.

    Raises:
        EmptyBodyError, MalformedBodyError: no body, or not JSON.
        InvalidRequestError: the JSON is not an object.
        InvalidInputError: no or several format keys, an unknown key or param, a row of the
            wrong shape or type, or a bad value (named by row and column).
        BatchTooLargeError: more than ``max_rows`` rows.
    """
    document = v1.parse_json_object(body)
    keys = [key for key in FORMATS if key in document]
    unknown = [key for key in document if key not in FORMATS and key != _PARAMS]
    if len(keys) != 1 or unknown:
        problems = [Problem(key, "unknown field") for key in unknown]
        if len(keys) != 1:
            given = ", ".join(keys) or "none"
            problems.append(Problem("body", f"exactly one of {', '.join(FORMATS)}; got {given}"))
        raise InvalidInputError(
            f"the body must hold its rows under exactly one of {', '.join(FORMATS)}", problems
        )
    [key] = keys
    method = _method_param(document.get(_PARAMS))
    rows = _rows_of(key, document[key], names)
    if not rows:
        raise InvalidInputError("there are no rows to score", [Problem(key, "must not be empty")])
    if len(rows) > max_rows:
        raise BatchTooLargeError(
            f"{len(rows)} rows exceed the limit of {max_rows}; split them or submit a job",
            [Problem(key, f"at most {max_rows} rows")],
        )
    records: list[dict[str, Any]] = []
    problems = []
    for where, row in rows:
        record, found = validator.check_record(row, where)
        records.append(record)
        problems.extend(found)
    if problems:
        raise invalid_rows_error(problems)
    return records, method


def invalid_rows_error(problems: list[Problem]) -> InvalidInputError:
    """The error naming bad values, at most ``MAX_PROBLEMS`` of them."""
    shown = problems[:MAX_PROBLEMS]
    more = f" (the first {len(shown)} named)" if len(problems) > len(shown) else ""
    return InvalidInputError(f"{len(problems)} invalid value(s) in the rows{more}", shown)


def _method_param(params: Any) -> str | None:
    """The predict method ``params`` names; any other param is refused."""
    if params is None:
        return None
    if not isinstance(params, Mapping):
        raise InvalidInputError(
            "params must be an object",
            [Problem(_PARAMS, f"expected an object, got {type(params).__name__}")],
        )
    unknown = [key for key in params if key != _METHOD]
    if unknown:
        raise InvalidInputError(
            f"unknown param(s): {', '.join(unknown)}",
            [Problem(f"{_PARAMS}.{key}", f"unknown param; only {_METHOD}") for key in unknown],
        )
    method = params.get(_METHOD)
    if method is not None and not isinstance(method, str):
        raise InvalidInputError(
            "the predict method must be a string",
            [Problem(f"{_PARAMS}.{_METHOD}", f"one of {', '.join(PREDICT_METHODS)}")],
        )
    return method


def _rows_of(key: str, value: Any, names: Sequence[str]) -> list[tuple[str, Any]]:
    """Each row of a format key's value, with where it is; rows are records or lists.

    Raises:
        InvalidInputError: the value or a row has the wrong shape.
    """
    if key == "dataframe_split":
        return _split_rows(value)
    if key == "inputs" and isinstance(value, Mapping):
        return _column_rows(value)
    if not isinstance(value, list):
        expected = "a list of records" if key == "dataframe_records" else "a list of rows"
        raise InvalidInputError(
            f"{key} must be {expected}",
            [Problem(key, f"expected {expected}, got {type(value).__name__}")],
        )
    rows: list[tuple[str, Any]] = []
    for index, row in enumerate(value):
        where = f"{key}[{index}]"
        if isinstance(row, list) and key != "dataframe_records":
            rows.append((where, _as_record(where, names, row)))
        else:  # not a record: check_record names it
            rows.append((where, row))
    return rows


def _split_rows(value: Any) -> list[tuple[str, Any]]:
    """The rows of ``{"columns": [...], "data": [[...]], "index"?: [...]}``."""
    key = "dataframe_split"
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"{key} must be an object",
            [Problem(key, f"expected an object, got {type(value).__name__}")],
        )
    columns, data, index = value.get("columns"), value.get("data"), value.get("index")
    problems = [Problem(f"{key}.{name}", "unknown field") for name in value if name not in _SPLIT]
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
        problems.append(
            Problem(f"{key}.columns", "field required: a list of column names (strings)")
        )
    elif len(set(columns)) != len(columns):
        problems.append(Problem(f"{key}.columns", "column names must be unique"))
    if not isinstance(data, list):
        problems.append(Problem(f"{key}.data", "field required: a list of rows"))
    elif index is not None and (not isinstance(index, list) or len(index) != len(data)):
        problems.append(Problem(f"{key}.index", "must be a list as long as data"))
    if problems or not isinstance(columns, list) or not isinstance(data, list):
        raise InvalidInputError(f"{key} is invalid", problems)
    return [
        (f"{key}.data[{row}]", _as_record(f"{key}.data[{row}]", columns, values))
        for row, values in enumerate(data)
    ]


_SPLIT = frozenset({"columns", "data", "index"})


def _column_rows(value: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The rows of ``{"inputs": {column: [values]}}``: every column as long as the first."""
    problems = [
        Problem(f"inputs.{name}", "expected a list of values")
        for name, values in value.items()
        if not isinstance(values, list)
    ]
    lengths = {len(values) for values in value.values() if isinstance(values, list)}
    if not problems and len(lengths) > 1:
        problems = [Problem("inputs", f"columns differ in length: {sorted(lengths)}")]
    if problems:
        raise InvalidInputError("inputs is invalid", problems)
    count = lengths.pop() if lengths else 0
    return [
        (f"inputs[{row}]", {name: values[row] for name, values in value.items()})
        for row in range(count)
    ]


def _as_record(where: str, names: Sequence[str], values: Any) -> Any:
    """A row of values in ``names``' order as a record (other values go on to be named)."""
    if not isinstance(values, list):
        return values
    if len(values) != len(names):
        raise InvalidInputError(
            f"{where} has {len(values)} values for {len(names)} columns",
            [Problem(where, f"expected {len(names)} values, got {len(values)}")],
        )
    return dict(zip(names, values, strict=True))
