"""A ``text/csv`` invocation: a few plain rows read by the feature spec, any other by pandas.

pandas' reader costs milliseconds however small the body, and most invocations carry a row
or a few. So a small body whose header names exactly the features, and whose every cell
reads one way only, is read with the ``csv`` module and typed as a JSON record's values are
(``typed_rows``): a number for a number or a whole-number feature, ``0``, ``1``, ``true`` or
``false`` for a flag, and for a category text that pandas would keep as text too (not a
number, a boolean or a missing-value marker). Any other body, or any cell in doubt (a gap
among them), goes to pandas and the file rules (``read_csv``), which name every problem;
the cells of a body both ways read are the same values either way.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pandas as pd

from tabops.errors import (
    BatchTooLargeError,
    EmptyBodyError,
    InvalidInputError,
    MalformedBodyError,
    Problem,
)
from tabops.schema import ColumnSpec, Kind
from tabops.validation.values import CHECKERS

SMALL_CSV_BYTES = 16 * 1024
"""Bodies up to this size are tried by ``typed_rows``; pandas reads larger ones faster."""
_SMALL_CSV_ROWS = 64
# ASCII digits and spaces only: Python's float() and int() also take other scripts' digits,
# underscores and other white space, which pandas reads as text.
_NUMBER = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *")
_WHOLE = re.compile(r" *[+-]?[0-9]+ *")
# Text pandas reads as something else: numbers of any spelling, infinities, booleans, and
# its default missing-value markers (read_csv's na_values).
_NOT_TEXT = re.compile(
    r"\s*[+-]?(?:\d[\d.]*|\.\d+)(?:[eE][+-]?\d+)?\s*|\s*[+-]?(?:inf|infinity|nan)\s*"
    r"|true|false|#n/a|#n/a n/a|#na|-1\.#ind|-1\.#qnan|-nan|1\.#ind|1\.#qnan|<na>|n/a|na"
    r"|null|none|\s*",
    re.IGNORECASE,
)
_FLAG_WORDS = {"True": 1, "TRUE": 1, "true": 1, "False": 0, "FALSE": 0, "false": 0}
_DOUBT = object()


def typed_rows(features: list[ColumnSpec], body: bytes) -> list[tuple[Any, ...]] | None:
    """The rows of a small CSV body in spec order, typed as the typed decoder types them.

    None when pandas must read it: a larger body, a header other than the features, a gap,
    or any cell that does not read one way only.
    """
    if len(body) > SMALL_CSV_BYTES:
        return None
    try:
        table = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error):
        return None
    if len(table) < 2 or len(table) > _SMALL_CSV_ROWS + 1:
        return None
    header, *cells = table
    by_name = {column.name: column for column in features}
    if len(header) != len(features) or set(header) != by_name.keys():
        return None  # renamed, unknown, missing or repeated columns
    columns = [by_name[name] for name in header]
    order = [header.index(column.name) for column in features]
    rows: list[tuple[Any, ...]] = []
    flag_words: dict[int, bool] = {}
    for row in cells:
        if len(row) != len(columns):
            return None
        values = []
        for position, (column, text) in enumerate(zip(columns, row, strict=True)):
            value = _cell(column, text)
            if value is _DOUBT:
                return None
            if column.kind is Kind.BOOLEAN:
                # pandas reads a column of words and numbers together as text: not this way.
                is_word = text in _FLAG_WORDS
                if flag_words.setdefault(position, is_word) is not is_word:
                    return None
            values.append(value)
        rows.append(tuple(values[position] for position in order))
    return rows


def _cell(column: ColumnSpec, text: str) -> Any:
    """A cell as its feature's value, or ``_DOUBT``."""
    kind = column.kind
    if kind is Kind.CATEGORICAL:
        return _DOUBT if _NOT_TEXT.fullmatch(text) else text
    if kind is Kind.BOOLEAN and text in _FLAG_WORDS:
        return _FLAG_WORDS[text]
    if kind is Kind.INTEGER and _WHOLE.fullmatch(text):
        number: float | int = int(text)
    elif _NUMBER.fullmatch(text):
        number = float(text)
    else:
        return _DOUBT
    value, problem = CHECKERS[kind](number)
    return _DOUBT if problem is not None else value


def read_csv(body: bytes, max_rows: int) -> pd.DataFrame:
    """A CSV body (header row first) as a frame of pandas' inferred types.

    Raises:
        EmptyBodyError: no body.
        MalformedBodyError: not UTF-8, or not a table (a row with more cells than the header).
        InvalidInputError: a header without rows.
        BatchTooLargeError: more than ``max_rows`` rows.
    """
    if not body.strip():
        raise EmptyBodyError("the request body is empty; send CSV", [Problem("body", "empty")])
    try:
        frame = pd.read_csv(io.BytesIO(body), encoding="utf-8")
    except (ValueError, csv.Error) as exc:  # pandas' parser errors and bad UTF-8 among them
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MalformedBodyError(
            f"the request body is not a CSV table: {reason}", [Problem("body", reason)]
        ) from exc
    if not isinstance(frame.index, pd.RangeIndex):  # pandas made the surplus cells an index
        reason = "a row has more cells than the header has names"
        raise MalformedBodyError(
            f"the request body is not a CSV table: {reason}", [Problem("body", reason)]
        )
    if frame.empty:
        raise InvalidInputError("there are no rows to score", [Problem("body", "no rows")])
    if len(frame) > max_rows:
        raise BatchTooLargeError(
            f"{len(frame)} rows exceed the limit of {max_rows}; split them or submit a job",
            [Problem("body", f"at most {max_rows} rows")],
        )
    return frame
