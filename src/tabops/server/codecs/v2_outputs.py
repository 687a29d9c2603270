"""The outputs of an Open Inference Protocol answer: which are wanted, and how they are written.

``probability`` (FP64), ``label`` (INT64) and ``class_name`` (BYTES), each of shape ``[n, 1]``,
as JSON data or, when asked for, as binary data after the answer's JSON.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tabops.errors import InvalidRequestError, Problem
from tabops.server.codecs.v2_binary import BYTES, FIXED_TYPES, pack_bytes
from tabops.serving.decisions import Decisions

OUTPUTS = ("probability", "label", "class_name")
"""What a V2 answer can hold; ``class_name`` only when asked for."""
OUTPUT_TYPES = {"probability": "FP64", "label": "INT64", "class_name": BYTES}
_DEFAULT_OUTPUTS = ("probability", "label")
_DEFAULT_WANTED = [(name, False) for name in _DEFAULT_OUTPUTS]
_DEFAULT_BINARY = [(name, True) for name in _DEFAULT_OUTPUTS]


@dataclass(frozen=True, slots=True)
class InferAnswer:
    """An answer's body; ``header_length`` is set when binary outputs follow its JSON."""

    body: bytes
    header_length: int | None = None


def requested_outputs(parameters: Any, requested: Any) -> list[tuple[str, bool]]:
    """The outputs to answer, in order, each with whether it is wanted as binary data."""
    if parameters is None and requested is None:
        return _DEFAULT_WANTED
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequestError("invalid parameters", [Problem("parameters", "not an object")])
    binary = bool(parameters and parameters.get("binary_data_output") is True)
    if requested is None:
        return _DEFAULT_BINARY if binary else _DEFAULT_WANTED
    if not isinstance(requested, list):
        raise InvalidRequestError("invalid outputs", [Problem("outputs", "not a list")])
    wanted, problems = [], []
    for index, item in enumerate(requested):
        name = item.get("name") if isinstance(item, dict) else None
        if name not in OUTPUTS:
            known = ", ".join(OUTPUTS)
            problems.append(Problem(f"outputs[{index}].name", f"unknown output {name!r}; {known}"))
            continue
        options = item.get("parameters") or {}
        is_binary = options.get("binary_data", binary) if isinstance(options, dict) else binary
        wanted.append((str(name), is_binary is True))
    if problems:
        raise InvalidRequestError("unknown outputs requested", problems)
    return wanted


def _values(name: str, decisions: Decisions) -> list[Any]:
    """One output's values.

    A label is the class's own value when both classes' are integers, else 1 or 0.
    """
    if name == "probability":
        return decisions.probabilities
    index = 1 if name == "class_name" else 0
    positive, negative = decisions.positive[index], decisions.negative[index]
    if not index and (type(positive) is not int or type(negative) is not int):
        positive, negative = 1, 0
    return [positive if is_positive else negative for is_positive in decisions.is_positive]


def encode_answer(
    decisions: Decisions, wanted: list[tuple[str, bool]], request_id: str
) -> InferAnswer:
    """The answer: model, version, request id and the outputs wanted (binary ones last)."""
    if len(decisions) == 1 and (wanted is _DEFAULT_WANTED or wanted is _DEFAULT_BINARY):
        return _one_default(decisions, request_id, wanted is _DEFAULT_BINARY)
    shape = [len(decisions), 1]
    outputs: list[dict[str, Any]] = []
    tail: list[bytes] = []
    for name, is_binary in wanted:
        values = _values(name, decisions)
        if is_binary:
            data = _packed(name, values)
            tail.append(data)
            parameters = {"binary_data_size": len(data)}
            output = {"name": name, "datatype": OUTPUT_TYPES[name], "shape": shape}
            outputs.append(output | {"parameters": parameters})
        else:
            datatype = OUTPUT_TYPES[name]
            outputs.append({"name": name, "datatype": datatype, "shape": shape, "data": values})
    header = orjson.dumps(
        {
            "model_name": decisions.model,
            "model_version": str(decisions.version),
            "id": request_id,
            "outputs": outputs,
        }
    )
    if not tail:
        return InferAnswer(header)
    return InferAnswer(header + b"".join(tail), len(header))


def _packed(name: str, values: list[Any]) -> bytes:
    if name == "class_name":
        return pack_bytes(values)
    dtype = FIXED_TYPES[OUTPUT_TYPES[name]]
    return np.asarray(values, dtype=dtype).tobytes()


@dataclass(frozen=True, slots=True)
class _OneRowParts:
    """What the answers of a version to one row with the default outputs share, as bytes."""

    head: bytes  # up to the request id
    json_middle: bytes  # between the id and the probability
    json_ends: tuple[bytes, bytes]  # after the probability: the label, negative or positive
    binary_end: bytes  # after the id, when both outputs are binary
    labels: tuple[int, int]  # the label's value, negative or positive


_ONE_PARTS: dict[tuple[str, int], _OneRowParts] = {}
_ONE_PARTS_KEPT = 256  # versions whose answer parts are kept; more only costs time
_PROBABILITY_AND_LABEL = struct.Struct("<dq")  # FP64 then INT64, as binary outputs are packed


def _one_row_parts(decisions: Decisions) -> _OneRowParts:
    """The shared parts of one version's one-row answers, written on its first answer."""
    key = (decisions.model, decisions.version)
    parts = _ONE_PARTS.get(key)
    if parts is not None:
        return parts
    if len(_ONE_PARTS) >= _ONE_PARTS_KEPT:
        _ONE_PARTS.clear()
    model = orjson.dumps(decisions.model)
    version = orjson.dumps(str(decisions.version))
    negative, positive = decisions.negative[0], decisions.positive[0]
    if type(positive) is not int or type(negative) is not int:
        positive, negative = 1, 0
    label = b']},{"name":"label","datatype":"INT64","shape":[1,1],"data":['
    sizes = [{"name": name, "datatype": OUTPUT_TYPES[name], "shape": [1, 1]} for name in OUTPUTS]
    binary = [output | {"parameters": {"binary_data_size": 8}} for output in sizes[:2]]
    parts = _ONE_PARTS[key] = _OneRowParts(
        head=b'{"model_name":' + model + b',"model_version":' + version + b',"id":',
        json_middle=b',"outputs":[{"name":"probability","datatype":"FP64","shape":[1,1],"data":[',
        json_ends=(
            label + orjson.dumps(negative) + b"]}]}",
            label + orjson.dumps(positive) + b"]}]}",
        ),
        binary_end=b',"outputs":' + orjson.dumps(binary) + b"}",
        labels=(negative, positive),
    )
    return parts


def _one_default(decisions: Decisions, request_id: str, binary: bool) -> InferAnswer:
    """The answer to one row with the default outputs, from parts written once per version.

    The commonest answer, written without building its nested document: the same bytes
    ``orjson`` writes for it.
    """
    parts = _one_row_parts(decisions)
    is_positive = int(decisions.is_positive[0])
    probability = decisions.probabilities[0]
    if binary:
        header = b"".join((parts.head, orjson.dumps(request_id), parts.binary_end))
        values = _PROBABILITY_AND_LABEL.pack(probability, parts.labels[is_positive])
        return InferAnswer(header + values, len(header))
    return InferAnswer(
        b"".join(
            (
                parts.head,
                orjson.dumps(request_id),
                parts.json_middle,
                orjson.dumps(probability),
                parts.json_ends[is_positive],
            )
        )
    )
