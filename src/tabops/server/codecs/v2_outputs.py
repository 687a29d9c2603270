"""The outputs of an Open Inference Protocol answer: which are wanted, and how they are written.

``probability`` (FP64), ``label`` (INT64) and ``class_name`` (BYTES), each of shape ``[n, 1]``,
as JSON data or, when asked for, as binary data after the answer's JSON.
"""

from __future__ import annotations

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
        return [(name, binary) for name in _DEFAULT_OUTPUTS]
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
    if wanted is _DEFAULT_WANTED and len(decisions) == 1:
        return InferAnswer(_one_default(decisions, request_id))
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


_ONE_PARTS: dict[tuple[str, int], tuple[bytes, bytes, bytes]] = {}
_ONE_PARTS_KEPT = 256  # versions whose answer parts are kept; more only costs time


def _one_default(decisions: Decisions, request_id: str) -> bytes:
    """The answer to one row with the default outputs, from parts written once per version.

    The commonest answer, written without building its nested document: the same bytes
    ``orjson`` writes for it.
    """
    key = (decisions.model, decisions.version)
    parts = _ONE_PARTS.get(key)
    if parts is None:
        if len(_ONE_PARTS) >= _ONE_PARTS_KEPT:
            _ONE_PARTS.clear()
        model = orjson.dumps(decisions.model)
        version = orjson.dumps(str(decisions.version))
        parts = _ONE_PARTS[key] = (
            b'{"model_name":' + model + b',"model_version":' + version + b',"id":',
            b',"outputs":[{"name":"probability","datatype":"FP64","shape":[1,1],"data":[',
            b']},{"name":"label","datatype":"INT64","shape":[1,1],"data":[',
        )
    head, probability, label = parts
    [value] = _values("label", decisions)
    return b"".join(
        (
            head,
            orjson.dumps(request_id),
            probability,
            orjson.dumps(decisions.probabilities[0]),
            label,
            orjson.dumps(value),
            b"]}]}",
        )
    )
