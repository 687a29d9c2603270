"""Decoding MLflow's scoring bodies into validated records, and its error dialect."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabops.errors import (
    BatchTooLargeError,
    EmptyBodyError,
    InvalidInputError,
    MalformedBodyError,
    UnsupportedMediaError,
)
from tabops.schema import ColumnSpec, FeatureSpec, Kind
from tabops.server.codecs.mlflow import choose_method, media_of
from tabops.server.codecs.mlflow_csv import read_csv, typed_rows
from tabops.server.codecs.mlflow_json import decode_json
from tabops.server.errors import mlflow_dialect
from tabops.validation import FeatureValidator

SPEC = FeatureSpec(
    columns=[
        ColumnSpec(name="age", kind=Kind.INTEGER, minimum=0, maximum=120),
        ColumnSpec(name="smoker", kind=Kind.BOOLEAN),
        ColumnSpec(name="city", kind=Kind.CATEGORICAL, categories=["paris", "lyon"], nullable=True),
    ]
)
NAMES = SPEC.feature_names
VALIDATOR = FeatureValidator(SPEC)
ROWS = [[30, True, "paris"], [61, False, None]]
RECORDS = [dict(zip(NAMES, row, strict=True)) for row in ROWS]


def decode(document: object, max_rows: int = 10) -> tuple[list[dict], str | None]:
    return decode_json(VALIDATOR, NAMES, json.dumps(document).encode(), max_rows)


def fields(error: pytest.ExceptionInfo) -> list[str]:
    return [problem.field for problem in error.value.problems]


@pytest.mark.parametrize(
    "document",
    [
        {"dataframe_split": {"columns": NAMES, "data": ROWS}},
        {"dataframe_split": {"columns": NAMES[::-1], "data": [r[::-1] for r in ROWS]}},
        {"dataframe_split": {"columns": NAMES, "data": ROWS, "index": [7, 3]}},
        {"dataframe_records": RECORDS},
        {"instances": RECORDS},
        {"instances": ROWS},
        {"inputs": {name: [row[i] for row in ROWS] for i, name in enumerate(NAMES)}},
        {"inputs": RECORDS},
        {"inputs": ROWS},
    ],
    ids=lambda document: next(iter(document)),
)
def test_decode_json_gives_the_same_records_for_every_format(document):
    assert decode(document) == (RECORDS, None)


def test_decode_json_reads_the_predict_method_from_params():
    assert decode({"inputs": ROWS, "params": {"predict_method": "predict_proba"}})[1] == (
        "predict_proba"
    )


def test_decode_json_names_every_bad_value_by_row_and_column():
    rows = [["thirty", True, "paris"], [61, "maybe", None], [40, False, "lyon"]]
    with pytest.raises(InvalidInputError) as error:
        decode({"dataframe_split": {"columns": NAMES, "data": rows}})
    assert fields(error) == ["dataframe_split.data[0].age", "dataframe_split.data[1].smoker"]


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({}, "body"),
        ({"instances": ROWS, "inputs": ROWS}, "body"),
        ({"inputs": ROWS, "extra": 1}, "extra"),
        ({"inputs": ROWS, "params": [1]}, "params"),
        ({"inputs": ROWS, "params": {"predict_method": 3}}, "params.predict_method"),
        ({"dataframe_split": {"columns": NAMES}}, "dataframe_split.data"),
        (
            {"dataframe_split": {"columns": ["age", "age", "city"], "data": ROWS}},
            "dataframe_split.columns",
        ),
        (
            {"dataframe_split": {"columns": NAMES, "data": ROWS, "index": [1]}},
            "dataframe_split.index",
        ),
        ({"dataframe_split": [1]}, "dataframe_split"),
        ({"dataframe_records": ROWS}, "dataframe_records[0]"),
        ({"instances": [[30, True]]}, "instances[0]"),
        ({"inputs": {"age": [1, 2], "smoker": [True]}}, "inputs"),
        ({"inputs": {"age": 1}}, "inputs.age"),
        ({"inputs": "30,true,paris"}, "inputs"),
        ({"instances": [{**RECORDS[0], "height": 1}]}, "instances[0].height"),
        ({"instances": [{"age": 1, "city": None}]}, "instances[0].smoker"),
        ({"instances": []}, "instances"),
    ],
)
def test_decode_json_refuses_a_bad_shape_naming_where(document, field):
    with pytest.raises(InvalidInputError) as error:
        decode(document)
    assert field in fields(error)


def test_decode_json_refuses_more_rows_than_the_limit():
    with pytest.raises(BatchTooLargeError):
        decode({"instances": ROWS * 3}, max_rows=5)


def test_decode_json_names_at_most_fifty_problems():
    with pytest.raises(InvalidInputError) as error:
        decode({"instances": [{"age": "x", "smoker": "y"}] * 40}, max_rows=100)
    assert len(error.value.problems) == 50
    assert "80 invalid" in error.value.message


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", EmptyBodyError),
        (b"  \n", EmptyBodyError),
        (b"age,smoker\n1,2,3,4\n", MalformedBodyError),
        (b"age,smoker\n1,2\n3,4,5\n", MalformedBodyError),
        (b"age\n\xff\n", MalformedBodyError),
        (b"age,smoker\n", InvalidInputError),
    ],
)
def test_read_csv_refuses_what_is_not_a_table_of_rows(body, error):
    with pytest.raises(error):
        read_csv(body, 10)


def test_read_csv_reads_a_table_and_counts_its_rows():
    assert read_csv(b"age,smoker\n30,1\n61,0\n", 10).to_dict("list") == {
        "age": [30, 61],
        "smoker": [1, 0],
    }
    with pytest.raises(BatchTooLargeError):
        read_csv(b"age\n1\n2\n3\n", 2)


@pytest.mark.parametrize(
    ("content_type", "media"),
    [
        ("application/json", "application/json"),
        ("Application/JSON; charset=UTF-8", "application/json"),
        ("text/csv", "text/csv"),
        ("text/csv; charset=utf-8", "text/csv"),
    ],
)
def test_media_of_accepts_json_and_csv_in_utf8(content_type, media):
    assert media_of(content_type) == media


@pytest.mark.parametrize(
    "content_type",
    [None, "", "text/plain", "application/json; format=pandas-split", "text/csv; charset=latin-1"],
)
def test_media_of_refuses_other_types_naming_the_accepted_ones(content_type):
    with pytest.raises(UnsupportedMediaError) as error:
        media_of(content_type)
    assert fields(error) == ["content-type"]


def test_choose_method_defaults_to_predict_and_refuses_a_conflict():
    assert choose_method(None, None) == "predict"
    assert choose_method("decision", None) == "decision"
    assert choose_method(None, "predict_proba") == "predict_proba"
    assert choose_method("predict", "predict") == "predict"
    with pytest.raises(InvalidInputError):
        choose_method("predict", "predict_proba")
    with pytest.raises(InvalidInputError):
        choose_method("explain", None)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (422, "invalid_input", (400, "BAD_REQUEST")),
        (400, "malformed_json", (400, "BAD_REQUEST")),
        (401, "not_authenticated", (401, "UNAUTHENTICATED")),
        (403, "not_authorized", (403, "PERMISSION_DENIED")),
        (404, "model_not_found", (404, "RESOURCE_DOES_NOT_EXIST")),
        (404, "not_found", (404, "ENDPOINT_NOT_FOUND")),
        (413, "batch_too_large", (413, "BAD_REQUEST")),
        (415, "unsupported_media_type", (415, "BAD_REQUEST")),
        (429, "rate_limited", (429, "REQUEST_LIMIT_EXCEEDED")),
        (503, "model_refused", (503, "TEMPORARILY_UNAVAILABLE")),
        (500, "internal_error", (500, "INTERNAL_ERROR")),
    ],
)
def test_mlflow_dialect_answers_mlflow_codes_and_bad_input_as_400(status, code, expected):
    answered, document = mlflow_dialect(status, code, "it failed", [])
    assert (answered, document["error_code"]) == expected
    assert document["message"] == "it failed"


CSV_FEATURES = [
    ColumnSpec(name="amount", kind=Kind.NUMERIC),
    ColumnSpec(name="count", kind=Kind.INTEGER),
    ColumnSpec(name="flag", kind=Kind.BOOLEAN),
    ColumnSpec(name="colour", kind=Kind.CATEGORICAL, categories=["blue", "red"]),
]


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        (b"amount,count,flag,colour\n2.5,7,1,red\n", [(2.5, 7, 1, "red")]),
        # Any column order, CRLF, quotes, signs, exponents, whole floats, spaces around numbers.
        (
            b'colour,flag,count,amount\r\n"blue",0,+3, 1e2\r\nred,1.0,4.0,-.5\r\n',
            [(100.0, 3, 0, "blue"), (-0.5, 4, 1, "red")],
        ),
        (b"amount,count,flag,colour\n1,2,true,mauve\n3,4,False,a b\n", None),  # below
    ],
)
def test_typed_rows_read_plain_cells_as_the_typed_decoder_types_them(body, rows):
    if rows is None:  # flags as words, and categories never seen: still plain text
        rows = [(1.0, 2, 1, "mauve"), (3.0, 4, 0, "a b")]
    assert typed_rows(CSV_FEATURES, body) == rows


@pytest.mark.parametrize(
    "row",
    [
        "1,2,1,",  # a gap
        "nan,2,1,red",
        "1,NA,1,red",
        "inf,2,1,red",
        "1e400,2,1,red",  # past the float range
        "1_000,2,1,red",  # a Python number, text to pandas
        "0x10,2,1,red",
        "\u0661\u0662,2,1,red",  # digits of another script: a number to Python, text to pandas
        "1,2\u00a0,1,red",  # a no-break space
        "1,\t2,1,red",
        "1,2.5,1,red",  # a fraction for a whole number
        "1,99999999999999999999,1,red",  # past 64 bits
        "1,2,2,red",  # a flag is 0 or 1
        "1,2,yes,red",
        "1,2,1,007",  # pandas reads this category as the number 7
        "1,2,1,True",
        "1,2,1,null",
        "1,2,1,  ",
        "1,2,1",  # a cell short
        "1,2,1,red,extra",
    ],
)
def test_typed_rows_leave_any_cell_in_doubt_to_pandas(row):
    assert typed_rows(CSV_FEATURES, f"amount,count,flag,colour\n{row}\n".encode()) is None


@pytest.mark.parametrize(
    "body",
    [
        b"amount,count,flag\n1,2,1\n",  # a feature missing
        b"amount,count,flag,colour,height\n1,2,1,red,3\n",  # an unknown column
        b"amount,amount,flag,colour\n1,2,1,red\n",
        b"\xef\xbb\xbfamount,count,flag,colour\n1,2,1,red\n",  # a byte order mark
        b"amount,count,flag,colour\n",  # no rows
        b"amount,count,flag,colour\n1,2,1,red\n\n",  # a blank line
        b"amount,count,flag,colour\n1,2,1,red\n3,4,true,blue\n",  # flags as numbers and words
        b"amount,count,flag,colour\n\xff,2,1,red\n",
        b"amount,count,flag,colour\n" + b"1,2,1,red\n" * 65,  # more rows than a few
    ],
)
def test_typed_rows_leave_other_tables_to_pandas(body):
    assert typed_rows(CSV_FEATURES, body) is None


_PIECES = ["0", "1", "7", "42", ".", "5", "e", "E", "+", "-", " ", "\t", "_", "x", "a", "N", "A"]
_PIECES += ["nan", "inf", "True", "false", "TRUE", "null", "#N/A", "\u0661", "\u00a0", '"', ","]
_CELL = st.lists(st.sampled_from(_PIECES), max_size=4).map("".join)


def mostly(plain: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Plain cells seven times in eight, so that many tables are read both ways; else anything."""
    return st.integers(0, 7).flatmap(lambda pick: _CELL if pick == 0 else plain)


_NUMBERS = mostly(
    st.one_of(
        st.integers(-(10**6), 10**6).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
    )
)
_WHOLES = mostly(
    st.integers(-(10**6), 10**6).flatmap(
        lambda number: st.sampled_from([str(number), f"{number}.0", f" +{abs(number)}"])
    )
)
_FLAGS = mostly(st.sampled_from(["0", "1", "1.0", " 0"]))  # words in tables of their own below
_TEXTS = mostly(st.sampled_from(["red", "blue", "a b", "mauve", "x1", " red"]))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.tuples(_NUMBERS, _WHOLES, _FLAGS, _TEXTS), min_size=1, max_size=4),
    st.booleans(),
)
def test_typed_rows_read_the_values_pandas_reads(cells, flags_as_words):
    if flags_as_words:
        words = {"0": "false", "1": "True", "1.0": "TRUE", " 0": "False"}
        cells = [(a, b, words.get(flag, flag), d) for a, b, flag, d in cells]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([column.name for column in CSV_FEATURES])
    writer.writerows(cells)
    body = text.getvalue().encode()
    found = typed_rows(CSV_FEATURES, body)
    if found is None:
        return  # pandas and the file rules decide
    frame = pd.read_csv(io.BytesIO(body))
    for row, values in zip(frame.itertuples(index=False), found, strict=True):
        amount, count, flag, colour = row
        assert values[:3] == (float(amount), float(count), float(flag))
        assert isinstance(colour, str)
        assert values[3] == colour


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | _CELL.map(str.encode))
def test_typed_rows_never_raise_on_any_body(body):
    header = b"amount,count,flag,colour\n"
    for candidate in (body, header + body):
        found = typed_rows(CSV_FEATURES, candidate)
        assert found is None or all(len(row) == len(CSV_FEATURES) for row in found)
