"""The V2 codec's parts without a model: binary splitting, tensors, BYTES, checks, errors."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabops.errors import BatchTooLargeError, InvalidInputError, InvalidRequestError, Problem
from tabops.schema import ColumnSpec, FeatureSpec, Kind
from tabops.server.codecs.v2 import feature_datatype, server_metadata
from tabops.server.codecs.v2_binary import BinaryReader, pack_bytes, split_body
from tabops.server.codecs.v2_record import OneMatrixRowDecoder, OneRowReaders
from tabops.server.codecs.v2_tensors import MatrixRules, checked_matrix, read_tensor

AMOUNT = ColumnSpec(name="amount", kind=Kind.NUMERIC)
COUNT = ColumnSpec(name="count", kind=Kind.INTEGER)
FLAG = ColumnSpec(name="flag", kind=Kind.BOOLEAN)
COLOUR = ColumnSpec(name="colour", kind=Kind.CATEGORICAL, nullable=True, categories=["blue"])
GAP = ColumnSpec(name="gap", kind=Kind.NUMERIC, nullable=True)


def fields(error: pytest.ExceptionInfo[Any]) -> list[str]:
    return [problem.field for problem in error.value.problems]


def tensor(item: dict[str, Any], data: bytes = b"", max_rows: int = 100) -> Any:
    return read_tensor(0, item, BinaryReader(memoryview(data)), max_rows)


def test_split_body_cuts_the_json_header_from_the_binary_data():
    header, data = split_body(b'{"a":1}\x01\x02', "7")
    assert header == b'{"a":1}'
    assert bytes(data) == b"\x01\x02"
    header, data = split_body(b"{}", None)
    assert (header, bytes(data)) == (b"{}", b"")


@pytest.mark.parametrize("length", ["99", "-1", "ten", " "])
def test_split_body_refuses_a_header_length_beyond_the_body_or_not_a_number(length):
    with pytest.raises(InvalidRequestError) as error:
        split_body(b"{}" * 4, length)
    assert fields(error) == ["Inference-Header-Content-Length"]


def test_binary_fixed_size_values_are_read_little_endian_in_order():
    data = np.array([1.5, -2.0], "<f8").tobytes() + np.array([7, 8, 9], "<i4").tobytes()
    reader = BinaryReader(memoryview(data))
    assert reader.read("inputs.a", "FP64", 2, 16).tolist() == [1.5, -2.0]
    assert reader.read("inputs.b", "INT32", 3, 12).tolist() == [7, 8, 9]
    reader.check_finished()


def test_bytes_elements_round_trip_through_their_length_prefixes():
    packed = pack_bytes(["blue", "", "vert clair"])
    assert packed[:8] == struct.pack("<I", 4) + b"blue"
    reader = BinaryReader(memoryview(packed))
    assert reader.read("inputs.c", "BYTES", 3, len(packed)) == [b"blue", b"", b"vert clair"]


@pytest.mark.parametrize(
    ("datatype", "count", "size", "data"),
    [
        ("FP64", 2, 15, b"\0" * 16),  # not a multiple of the item size
        ("FP64", 2, 24, b"\0" * 16),  # more than is left
        ("FP64", 1, -8, b"\0" * 8),
        ("FP64", 1, True, b"\0" * 8),
        ("BYTES", 2, 8, struct.pack("<I", 4) + b"blue"),  # one element, the shape says two
        ("BYTES", 1, 6, struct.pack("<I", 9) + b"ab"),  # an element longer than its data
        ("BYTES", 1, 2, b"\0\0"),  # a truncated length prefix
    ],
)
def test_binary_sizes_that_do_not_add_up_name_the_tensor(datatype, count, size, data):
    with pytest.raises(InvalidRequestError) as error:
        BinaryReader(memoryview(data)).read("inputs.x", datatype, count, size)
    assert fields(error) == ["inputs.x"]


def test_binary_data_beyond_the_inputs_is_refused():
    reader = BinaryReader(memoryview(b"\0" * 12))
    reader.read("inputs.x", "FP64", 1, 8)
    with pytest.raises(InvalidRequestError) as error:
        reader.check_finished()
    assert "4 bytes" in error.value.problems[0].problem


def test_a_tensor_reads_nested_json_rows_and_binary_data():
    nested = tensor({"name": "amount", "datatype": "FP64", "shape": [2, 1], "data": [[1], [2]]})
    assert nested.values == [1, 2]
    raw = np.array([3.0], "<f8").tobytes()
    item = {"name": "amount", "datatype": "FP64", "shape": [1], "parameters": {}}
    item["parameters"]["binary_data_size"] = 8
    assert tensor(item, raw).values.tolist() == [3.0]


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"datatype": "FP64", "shape": [1], "data": [1]}, "inputs[0].name"),
        ({"name": "a", "datatype": "DOUBLE", "shape": [1], "data": [1]}, "inputs.a.datatype"),
        ({"name": "a", "datatype": "FP64", "shape": [1, 1, 1], "data": [1]}, "inputs.a.shape"),
        ({"name": "a", "datatype": "FP64", "shape": [-1], "data": [1]}, "inputs.a.shape"),
        ({"name": "a", "datatype": "FP64", "shape": [2], "data": [1]}, "inputs.a.data"),
        ({"name": "a", "datatype": "FP64", "shape": [1]}, "inputs.a.data"),
        ({"name": "a", "datatype": "FP64", "shape": [2], "data": [[1], 2]}, "inputs.a.data"),
    ],
)
def test_a_malformed_tensor_is_refused_naming_its_part(item, field):
    with pytest.raises(InvalidRequestError) as error:
        tensor(item)
    assert fields(error) == [field]


def test_a_tensor_with_more_rows_than_allowed_is_too_large():
    with pytest.raises(BatchTooLargeError) as error:
        tensor({"name": "a", "datatype": "FP64", "shape": [5], "data": [1] * 5}, max_rows=4)
    assert fields(error) == ["inputs.a.shape"]


@pytest.mark.parametrize("rows", [3, 80])  # checked one by one, and with numpy
def test_values_are_checked_by_the_v1_rules_and_each_problem_named_by_row(rows):
    problems: list[Problem] = []
    values: list[Any] = [1] * rows
    values[1] = 2.5
    count = tensor({"name": "count", "datatype": "FP64", "shape": [rows], "data": values})
    assert len(count.column(COUNT, problems)) == rows
    flags = [1] * rows
    flags[2] = 3
    flag = tensor({"name": "flag", "datatype": "INT64", "shape": [rows], "data": flags})
    flag.column(FLAG, problems)
    assert [(p.field, p.problem) for p in problems] == [
        ("inputs.count[1]", "2.5 is not a whole number"),
        ("inputs.flag[2]", "3 is not 0, 1, true or false"),
    ]


def test_a_boolean_tensor_and_json_booleans_become_flags():
    flag = tensor({"name": "flag", "datatype": "BOOL", "shape": [2], "data": [True, False]})
    assert flag.column(FLAG, []) == [1, 0]
    raw = np.array([True, False, True]).tobytes()
    item = {"name": "flag", "datatype": "BOOL", "shape": [3]}
    item["parameters"] = {"binary_data_size": 3}
    assert tensor(item, raw).column(FLAG, []).tolist() == [1.0, 0.0, 1.0]


def test_many_json_flags_are_checked_at_once_as_a_few_are_one_by_one():
    values = [True, False, 1, 0, 1.0] * 20  # 100 values: checked with numpy
    long = tensor({"name": "flag", "datatype": "BOOL", "shape": [100], "data": values})
    assert long.column(FLAG, []).tolist() == [1.0, 0.0, 1.0, 0.0, 1.0] * 20
    problems: list[Problem] = []
    tensor({"name": "flag", "datatype": "BOOL", "shape": [100], "data": [*values[:99], 2]}).column(
        FLAG, problems
    )
    few: list[Problem] = []
    tensor({"name": "flag", "datatype": "BOOL", "shape": [2], "data": [True, 2]}).column(FLAG, few)
    assert [(p.field, p.problem) for p in problems] == [
        ("inputs.flag[99]", "2 is not 0, 1, true or false")
    ]
    assert [p.problem for p in few] == [problems[0].problem]
    amounts: list[Problem] = []
    tensor({"name": "amount", "datatype": "FP64", "shape": [100], "data": values}).column(
        AMOUNT, amounts
    )
    assert len(amounts) == 40  # true and false are no numbers, whatever the count


def test_bytes_become_categories_and_gaps_follow_nullability():
    packed = pack_bytes(["blue", "mauve"])
    item = {"name": "colour", "datatype": "BYTES", "shape": [2]}
    item["parameters"] = {"binary_data_size": len(packed)}
    assert tensor(item, packed).column(COLOUR, []) == ["blue", "mauve"]
    json_item = {"name": "colour", "datatype": "BYTES", "shape": [2], "data": [None, "blue"]}
    assert tensor(json_item).column(COLOUR, []) == [None, "blue"]
    problems: list[Problem] = []
    tensor({"name": "amount", "datatype": "FP64", "shape": [1], "data": [None]}).column(
        AMOUNT, problems
    )
    assert [(p.field, p.problem) for p in problems] == [("inputs.amount[0]", "is empty")]


def test_bytes_that_are_not_text_are_named():
    packed = pack_bytes(["blue"]) + struct.pack("<I", 2) + b"\xff\xfe"
    item = {"name": "colour", "datatype": "BYTES", "shape": [2]}
    item["parameters"] = {"binary_data_size": len(packed)}
    problems: list[Problem] = []
    tensor(item, packed).column(COLOUR, problems)
    assert [p.field for p in problems] == ["inputs.colour[1]"]
    assert "not text" in problems[0].problem


def checked(features: list[ColumnSpec], item: dict[str, Any], data: bytes = b"") -> np.ndarray:
    return checked_matrix(MatrixRules.of(features), tensor(item, data))


def test_a_matrix_is_checked_whole_with_nan_a_gap_only_where_nullable():
    matrix = np.array([[1.5, np.nan], [2.0, 4.0]])
    item = {"name": "x", "datatype": "FP64", "shape": [2, 2], "data": matrix.tolist()}
    found = checked([AMOUNT, GAP], item | {"data": [1.5, 0.5, 2.0, 4.0]})
    assert found.tolist() == [[1.5, 0.5], [2.0, 4.0]]
    raw = matrix.astype("<f8").tobytes()
    binary = {"name": "x", "datatype": "FP64", "shape": [2, 2]}
    binary["parameters"] = {"binary_data_size": len(raw)}
    assert np.isnan(checked([AMOUNT, GAP], binary, raw)[0, 1])
    with pytest.raises(InvalidInputError) as error:
        checked([GAP, AMOUNT], binary, raw)
    assert fields(error) == ["inputs.x[0, 1] (amount)"]


@pytest.mark.parametrize(
    ("features", "item", "problem"),
    [
        ([AMOUNT, COLOUR], {"datatype": "FP64", "shape": [1, 2]}, "numbers only"),
        ([AMOUNT, GAP], {"datatype": "INT64", "shape": [1, 2]}, "FP32 or FP64"),
        ([AMOUNT, GAP], {"datatype": "FP64", "shape": [2, 1]}, "takes 2 features"),
    ],
)
def test_a_matrix_that_does_not_fit_the_model_is_refused(features, item, problem):
    data = {"name": "x", "data": [1.0, 2.0]} | item
    with pytest.raises(InvalidRequestError) as error:
        checked(features, data)
    assert fields(error) == ["inputs.x"]
    assert problem in error.value.problems[0].problem


def test_a_matrix_of_json_text_names_each_value():
    item = {"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1.0, "two"]}
    with pytest.raises(InvalidInputError) as error:
        checked([AMOUNT, GAP], item)
    assert fields(error) == ["inputs.x[1]"]


def test_features_have_the_datatypes_of_their_kinds():
    kinds = [AMOUNT, COUNT, FLAG, COLOUR]
    assert [feature_datatype(c) for c in kinds] == ["FP64", "INT64", "BOOL", "BYTES"]
    assert server_metadata()["extensions"] == ["binary_tensor_data"]


ROW_SPEC = FeatureSpec(columns=[AMOUNT, COUNT, FLAG])


def one_row(item: dict[str, Any], data: bytes = b"", **request: Any) -> Any:
    header = json.dumps({"inputs": [item], **request}).encode()
    return OneMatrixRowDecoder(ROW_SPEC).decode(header, memoryview(data))


def test_one_row_tensor_is_read_as_json_or_binary_in_either_width():
    item = {"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [2.5, 7, 1]}
    values, request = one_row(item, id="r-1", parameters={"binary_data_output": True})
    assert values == [2.5, 7.0, 1.0]
    assert (request.id, request.parameters, request.outputs) == (
        "r-1",
        {"binary_data_output": True},
        None,
    )
    for datatype, dtype in (("FP64", "<f8"), ("FP32", "<f4")):
        raw = np.array([2.5, 7.0, 0.0], dtype).tobytes()
        binary = {"name": "x", "datatype": datatype, "shape": [1, 3]}
        binary["parameters"] = {"binary_data_size": len(raw)}
        values, _request = one_row(binary, raw)
        assert values == [2.5, 7.0, 0.0]


ROW = {"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [2.5, 7, 1]}


@pytest.mark.parametrize(
    "item",
    [
        ROW | {"data": [[2.5, 7, 1]]},  # nested rows
        ROW | {"data": [2.5, 7]},  # a value short
        ROW | {"data": [2.5, 7, 1, 4]},
        ROW | {"data": [2.5, "7", 1]},
        ROW | {"data": [2.5, 7.5, 1]},  # a fraction for a whole number
        ROW | {"data": [2.5, 2.0**63, 1]},  # beyond 64 bits
        ROW | {"data": [2.5, 7, 2]},  # a flag is 0 or 1
        ROW | {"data": [1e309, 7, 1]},  # infinite
        ROW | {"data": [None, 7, 1]},
        ROW | {"name": "amount"},  # a feature's name: the per-feature form
        ROW | {"datatype": "INT64"},
        ROW | {"shape": [2, 3]},
        ROW | {"shape": [1, 4]},
        ROW | {"parameters": {"content_type": "np"}},
        {k: v for k, v in ROW.items() if k != "data"},  # no data at all
    ],
)
def test_a_one_row_tensor_off_the_usual_way_is_left_to_the_general_way(item):
    assert one_row(item) is None


@pytest.mark.parametrize(
    ("values", "size", "extra"),
    [
        ([2.5, np.nan, 1.0], 24, b""),  # a gap in a required feature
        ([2.5, 7.0, 1.0], 16, b""),  # the size says two values
        ([2.5, 7.0, 1.0], 24, b"\0" * 8),  # data left over
    ],
)
def test_a_binary_row_off_the_usual_way_is_left_to_the_general_way(values, size, extra):
    raw = np.array(values, "<f8").tobytes() + extra
    item = {"name": "x", "datatype": "FP64", "shape": [1, 3]}
    assert one_row(item | {"parameters": {"binary_data_size": size}}, raw) is None
    assert one_row(ROW, raw) is None  # JSON data with binary data after it


def test_one_row_readers_read_either_form_whichever_came_last():
    readers = OneRowReaders(ROW_SPEC, columns=True, matrix=True)
    columns = [
        {"name": "amount", "datatype": "FP64", "shape": [1], "data": [2.5]},
        {"name": "count", "datatype": "INT64", "shape": [1], "data": [7]},
        {"name": "flag", "datatype": "BOOL", "shape": [1], "data": [True]},
    ]
    by_column = json.dumps({"inputs": columns}).encode()
    as_matrix = json.dumps({"inputs": [ROW]}).encode()
    none = memoryview(b"")
    for body, is_matrix in [(by_column, False), (as_matrix, True)] * 2 + [(by_column, False)]:
        found = readers.read(body, none)
        assert found is not None
        values, _request, matrix = found
        assert matrix is is_matrix
        assert list(values) == ([2.5, 7.0, 1.0] if is_matrix else [2.5, 7, True])
    only_columns = OneRowReaders(ROW_SPEC, columns=True, matrix=False)
    assert only_columns.read(as_matrix, none) is None
    assert OneRowReaders(ROW_SPEC, columns=False, matrix=True).read(by_column, none) is None


_JSON_PIECES = ['{"inputs": [', "]}", '{"name": "x", ', '"datatype": "FP64", ', '"shape": [1, 3], ']
_JSON_PIECES += [
    '"data": [2.5, 7, 1]}',
    '"parameters": {"binary_data_size": 24}}',
    ",",
    "null",
    "1e999",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_JSON_PIECES), max_size=8).map("".join).map(str.encode)
    | st.binary(max_size=100),
    st.binary(max_size=32),
)
def test_one_row_readers_never_raise_on_any_request(header, data):
    readers = OneRowReaders(ROW_SPEC, columns=True, matrix=True)
    found = readers.read(header, memoryview(data))
    assert found is None or len(found[0]) == 3
