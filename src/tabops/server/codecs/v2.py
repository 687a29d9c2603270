"""The Open Inference Protocol V2 (REST): tensors in, tensors out, over the serving core.

A request holds one tensor per feature (shape ``[n]`` or ``[n, 1]``; the "pd" content type
is this form), or one ``[n, k]`` FP32/FP64 tensor whose columns are the features in spec
order when every feature is a number. Values obey the rules of ``tabops.validation``, as
v1 records do; every problem names its tensor and row. Inputs may come as JSON or, with the
binary tensor data extension (``v2_binary``), as raw little-endian data, which a model
taking only numbers scores straight from the request's bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from tabops import __version__
from tabops.errors import (
    EmptyBodyError,
    InvalidInputError,
    InvalidRequestError,
    MalformedBodyError,
    Problem,
)
from tabops.model.predictor import Predictor
from tabops.schema import ColumnSpec, Kind
from tabops.server.codecs.v2_binary import (
    BYTES,
    BinaryReader,
    split_body,
)
from tabops.server.codecs.v2_outputs import (
    OUTPUT_TYPES,
    OUTPUTS,
    InferAnswer,
    encode_answer,
    requested_outputs,
)
from tabops.server.codecs.v2_record import OneRowReaders
from tabops.server.codecs.v2_tensors import (
    ACCEPTED,
    Column,
    MatrixRules,
    Tensor,
    checked_matrix,
    read_tensor,
)
from tabops.serving.context import RequestContext
from tabops.serving.core import ServingCore
from tabops.serving.decisions import Decisions
from tabops.serving.hooks import FeatureRows

PLATFORM = "tabops-sklearn"
_DATATYPES = {Kind.NUMERIC: "FP64", Kind.INTEGER: "INT64", Kind.BOOLEAN: "BOOL"}


def feature_datatype(column: ColumnSpec) -> str:
    """The datatype a feature's tensor has: FP64, INT64, BOOL, or BYTES for categories."""
    return _DATATYPES.get(column.kind, BYTES)


def server_metadata() -> dict[str, Any]:
    """The server's name, version and protocol extensions."""
    return {"name": "tabops", "version": __version__, "extensions": ["binary_tensor_data"]}


def model_metadata(predictor: Predictor, versions: Sequence[int]) -> dict[str, Any]:
    """A model's metadata: its versions, one input per feature, and the three outputs."""
    inputs = [
        {"name": column.name, "datatype": feature_datatype(column), "shape": [-1, 1]}
        for column in predictor.spec.features
    ]
    outputs = [{"name": name, "datatype": OUTPUT_TYPES[name], "shape": [-1, 1]} for name in OUTPUTS]
    return {
        "name": predictor.name,
        "versions": [str(version) for version in versions],
        "platform": PLATFORM,
        "inputs": inputs,
        "outputs": outputs,
    }


async def infer(
    core: ServingCore,
    context: RequestContext,
    predictor: Predictor,
    body: bytes,
    header_length: str | None,
    max_rows: int,
) -> InferAnswer:
    """The answer to an inference request, through the serving core.

    Raises:
        EmptyBodyError, MalformedBodyError, InvalidRequestError, InvalidInputError,
        BatchTooLargeError.
    """
    header, data = split_body(body, header_length)
    one = _one_row_readers(predictor).read(header, data)
    if one is not None:
        values, request, is_matrix = one
        wanted = requested_outputs(request.parameters, request.outputs)
        lean = predictor.lean
        if not is_matrix and lean is not None:
            features = FeatureRows(predictor.feature_names, rows=[values])
            encoded = lean.encode([values])[0]
        else:  # floats in spec order: the plain encoder is the identity
            features = FeatureRows(predictor.feature_names, rows=[tuple(values)])
            encoded = np.array(values, dtype=np.float64)
        keeps = core.keeps_inputs
        decisions = await core.decide_row(context, predictor, encoded, features if keeps else None)
        request_id = request.id
    else:
        document = _parse(header)
        wanted = requested_outputs(document.get("parameters"), document.get("outputs"))
        tensors = _tensors(document, BinaryReader(data), max_rows)
        rules = _matrix_rules(predictor)
        if _is_matrix(rules, tensors):
            matrix = checked_matrix(rules, tensors[0])
            decisions = await _decide_matrix(core, context, predictor, matrix)
        else:
            decisions = await _decide(core, context, predictor, _columns(predictor, tensors))
        request_id = document.get("id")
    if not isinstance(request_id, str) or not request_id:
        request_id = context.request_id
    return encode_answer(decisions, wanted, request_id)


def _parse(header: bytes) -> dict[str, Any]:
    if not header.strip():
        raise EmptyBodyError("the request body is empty", [Problem("body", "empty")])
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise MalformedBodyError(
            f"the request body is not valid JSON: {exc}", [Problem("body", "not valid JSON")]
        ) from exc
    if not isinstance(document, dict):
        raise InvalidRequestError(
            "the request body must be a JSON object", [Problem("body", "expected an object")]
        )
    return document


def _tensors(document: dict[str, Any], reader: BinaryReader, max_rows: int) -> list[Tensor]:
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequestError(
            "the request has no inputs", [Problem("inputs", "field required: a list of tensors")]
        )
    tensors = [read_tensor(index, item, reader, max_rows) for index, item in enumerate(inputs)]
    reader.check_finished()
    return tensors


def _is_matrix(rules: MatrixRules, tensors: list[Tensor]) -> bool:
    """Whether the inputs are one ``[n, k]`` tensor rather than one tensor per feature."""
    if len(tensors) != 1 or len(tensors[0].shape) != 2:
        return False
    name = tensors[0].name
    return not any(column.name == name for column in rules.features)


def _columns(predictor: Predictor, tensors: list[Tensor]) -> list[Column]:
    """One validated column per feature, in spec order, from one tensor per feature."""
    features = predictor.spec.features
    names = {column.name for column in features}
    problems: list[Problem] = []
    by_name: dict[str, Tensor] = {}
    rows = tensors[0].shape[0]
    for tensor in tensors:
        if tensor.name not in names:
            problems.append(Problem(tensor.field, "not a feature of the model"))
        elif tensor.name in by_name:
            problems.append(Problem(tensor.field, "sent twice"))
        if tensor.shape not in ([rows], [rows, 1]):
            expected = f"[{rows}] or [{rows}, 1], as the first input"
            problems.append(Problem(tensor.field, f"shape {tensor.shape}: expected {expected}"))
        by_name[tensor.name] = tensor
    for column in features:
        sent = by_name.get(column.name)
        if sent is None and not column.nullable:
            problems.append(Problem(f"inputs.{column.name}", "field required: no tensor sent"))
        elif sent is not None and sent.datatype not in ACCEPTED.get(column.kind, {BYTES}):
            expected = feature_datatype(column)
            problem = (
                f"datatype {sent.datatype} does not fit a {column.kind} feature; send {expected}"
            )
            problems.append(Problem(sent.field, problem))
    if problems:
        raise InvalidRequestError("the inputs do not fit the model", problems)
    columns: list[Column] = []
    for column in features:
        sent = by_name.get(column.name)
        values = sent.column(column, problems) if sent is not None else [None] * rows
        columns.append(values)
    if problems:
        raise InvalidInputError("some input values are invalid", problems)
    return columns


@lru_cache(maxsize=64)
def _one_row_readers(predictor: Predictor) -> OneRowReaders:
    """The one-row decoders of a version, made on its first request.

    One tensor per feature needs the version's typed decoder; one ``[1, k]`` tensor a plain
    encoder (numbers only, no gaps to fill), whose input is the row as it came.
    """
    parts = predictor.parts
    is_plain = parts is not None and not parts.encoder.categories and not parts.encoder.nullable
    matrix = is_plain and _matrix_rules(predictor).refusal is None
    return OneRowReaders(predictor.spec, columns=predictor.lean is not None, matrix=matrix)


@lru_cache(maxsize=64)
def _matrix_rules(predictor: Predictor) -> MatrixRules:
    """What an ``[n, k]`` tensor must satisfy for a version, worked out on its first request."""
    return MatrixRules.of(predictor.spec.features)


async def _decide_matrix(
    core: ServingCore, context: RequestContext, predictor: Predictor, matrix: np.ndarray
) -> Decisions:
    """Score a checked ``[n, k]`` matrix; it is the encoder's input when the encoder is plain."""
    parts = predictor.parts
    if parts is None or parts.encoder.categories or parts.encoder.nullable:
        columns: list[Column] = [matrix[:, position] for position in range(matrix.shape[1])]
        return await _decide(core, context, predictor, columns)
    # The encoder of numbers without gaps is the identity: no per-row work at all.
    encoded = np.ascontiguousarray(matrix, dtype=np.float64)
    return await _decide_encoded(core, context, predictor, encoded)


async def _decide_encoded(
    core: ServingCore, context: RequestContext, predictor: Predictor, encoded: np.ndarray
) -> Decisions:
    """Score rows already in the encoder's output form, their inputs kept as they are."""
    names = predictor.feature_names
    if len(encoded) == 1:
        row = encoded[0]
        one = FeatureRows(names, rows=[tuple(row.tolist())]) if core.keeps_inputs else None
        return await core.decide_row(context, predictor, row, one)
    features = FeatureRows(names, matrix=encoded) if core.keeps_inputs else None
    return await core.decide_array(context, predictor, encoded, features)


async def _decide(
    core: ServingCore, context: RequestContext, predictor: Predictor, columns: list[Column]
) -> Decisions:
    """Score the columns: straight as the encoder's matrix when they are already just that."""
    names = predictor.feature_names
    parts = predictor.parts
    if parts is None:  # no encoder: records, scored as frames
        rows = list(zip(*(_listed(column) for column in columns), strict=True))
        return await core.decide_records(
            context, predictor, [dict(zip(names, row, strict=True)) for row in rows]
        )
    lean = predictor.lean
    encoder = parts.encoder
    is_plain = not encoder.categories and not encoder.nullable
    if is_plain and all(isinstance(column, np.ndarray) for column in columns):
        # The encoder of numbers without gaps is the identity: no per-row work at all.
        encoded = np.column_stack(columns).astype(np.float64, copy=False)
        return await _decide_encoded(core, context, predictor, encoded)
    rows = list(zip(*(_listed(column) for column in columns), strict=True))
    encoded = (
        lean.encode(rows)
        if lean is not None
        else predictor.encode_records([dict(zip(names, row, strict=True)) for row in rows])
    )
    features = FeatureRows(names, rows=rows) if core.keeps_inputs else None
    if len(encoded) == 1:
        return await core.decide_row(context, predictor, encoded[0], features)
    return await core.decide_array(context, predictor, encoded, features)


def _listed(column: Column) -> list[Any]:
    """A column as Python values, a gap (NaN) as None."""
    if isinstance(column, list):
        return column
    values: list[Any] = column.tolist()
    return [None if value != value else value for value in values]  # NaN is not equal to itself
