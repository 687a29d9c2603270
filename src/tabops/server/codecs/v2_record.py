"""One row, decoded in one pass by a decoder generated for a version's features.

This is the commonest inference request (one prediction), so it gets the v1 treatment: a
msgspec decoder generated from the feature spec reads the whole request in C.

- ``OneRowDecoder``: one JSON tensor per feature, the tensor's name as the tag of a union
  with one member per feature, whose datatype, shape (``[1]`` or ``[1, 1]``) and value are
  typed as the v1 typed decoder types a record's values (``value_type``).
- ``OneMatrixRowDecoder``: one ``[1, k]`` FP32/FP64 tensor of a model taking numbers only,
  its values as JSON or as binary data, checked as ``MatrixRules`` checks a matrix.

A request either refuses goes the general way, which names every problem: neither decides
an error on its own. ``OneRowReaders`` holds a version's two and tries first the one its
last one-row request was read by (a client sends one form), so a request is rarely decoded
twice.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from tabops.model.decoder import value_type
from tabops.schema import FeatureSpec, Kind
from tabops.server.codecs.v2_binary import BYTES
from tabops.server.codecs.v2_tensors import ACCEPTED
from tabops.validation.values import INT64

_SHAPE = Annotated[tuple[Literal[1], ...], msgspec.Meta(min_length=1, max_length=2)]
_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


class OneRowDecoder:
    """Decodes a one-row request of one version into its values in spec order."""

    def __init__(self, spec: FeatureSpec) -> None:
        features = spec.features
        members: list[Any] = []
        for position, column in enumerate(features):
            datatypes = tuple(sorted(ACCEPTED.get(column.kind, {BYTES})))
            kind = value_type(column)
            members.append(
                msgspec.defstruct(
                    f"Tensor{position}",
                    [
                        ("datatype", Literal[datatypes]),
                        ("shape", _SHAPE),
                        ("data", tuple[kind]),  # type: ignore[valid-type]  # one value, generated
                    ],
                    tag_field="name",
                    tag=column.name,
                    forbid_unknown_fields=True,  # parameters: binary data, the general way
                    gc=False,
                    namespace={"position": position},
                )
            )
        tensor = functools.reduce(operator.or_, members)
        request = msgspec.defstruct(
            "OneRowRequest",
            [
                ("inputs", list[tensor]),  # type: ignore[valid-type]  # a generated union
                ("id", str | None, None),
                ("parameters", dict[str, Any] | None, None),
                ("outputs", list[Any] | None, None),
            ],
            gc=False,
        )
        self._decoder = msgspec.json.Decoder(request)
        self._width = len(features)
        self._required = [p for p, column in enumerate(features) if not column.nullable]

    def decode(self, body: bytes) -> tuple[tuple[Any, ...], Any] | None:
        """The row's values in spec order, and the request (``id``, ``parameters``, ``outputs``).

        None when the general way must decide.
        """
        try:
            request: Any = self._decoder.decode(body)
        except _ERRORS:
            return None
        inputs = request.inputs
        values: list[Any] = [None] * self._width
        for tensor in inputs:
            values[tensor.position] = tensor.data[0]
        if len(inputs) == self._width and None not in values:
            return tuple(values), request  # every feature once: nothing is missing or twice
        if len({tensor.position for tensor in inputs}) != len(inputs):
            return None  # a feature sent twice
        if len(inputs) != self._width and any(values[p] is None for p in self._required):
            return None  # a feature missing
        return tuple(values), request


_FLAGS = frozenset((0.0, 1.0))
_WIDTHS: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}


class _Size(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    binary_data_size: int


class OneMatrixRowDecoder:
    """Decodes a one-row ``[1, k]`` tensor request of one version into its values.

    Only for a version whose features are all numbers (``MatrixRules.refusal`` is None).
    """

    def __init__(self, spec: FeatureSpec) -> None:
        features = spec.features
        width = len(features)
        row = Annotated[tuple[float, ...], msgspec.Meta(min_length=width, max_length=width)]
        tensor = msgspec.defstruct(
            "MatrixRow",
            [
                ("name", str),
                ("datatype", Literal["FP32", "FP64"]),
                ("shape", tuple[Literal[1], Literal[width]]),  # type: ignore[valid-type]
                ("data", row | None, None),
                ("parameters", _Size | None, None),
            ],
            forbid_unknown_fields=True,
            gc=False,
        )
        request = msgspec.defstruct(
            "OneMatrixRowRequest",
            [
                ("inputs", tuple[tensor]),  # type: ignore[valid-type]  # generated
                ("id", str | None, None),
                ("parameters", dict[str, Any] | None, None),
                ("outputs", list[Any] | None, None),
            ],
            gc=False,
        )
        self._decoder = msgspec.json.Decoder(request)
        self._width = width
        self._names = frozenset(column.name for column in features)
        self._whole = [p for p, column in enumerate(features) if column.kind is Kind.INTEGER]
        self._flags = [p for p, column in enumerate(features) if column.kind is Kind.BOOLEAN]

    def decode(self, header: bytes, data: memoryview) -> tuple[list[float], Any] | None:
        """The row's values (floats, in spec order) and the request; None to go the general way.

        ``data`` is what follows the JSON header with the binary data extension (else empty).
        """
        try:
            request: Any = self._decoder.decode(header)
        except _ERRORS:
            return None
        [tensor] = request.inputs
        if tensor.name in self._names:
            return None  # a feature's own tensor: the per-feature form
        if tensor.parameters is None:
            if tensor.data is None or data:
                return None
            values = list(tensor.data)
        else:
            dtype = _WIDTHS[tensor.datatype]
            size = tensor.parameters.binary_data_size
            if tensor.data is not None or size != len(data) or size != dtype.itemsize * self._width:
                return None
            values = np.frombuffer(data, dtype=dtype).tolist()
        if not self._fits(values):
            return None
        return values, request

    def _fits(self, values: list[float]) -> bool:
        """Whether every value is finite and whole or 0/1 where its feature asks."""
        if not math.isfinite(sum(values)):  # any NaN or infinity (or a sum past the range)
            return False
        for position in self._whole:
            value = values[position]
            if not value.is_integer() or not abs(value) < INT64:
                return False
        flags = _FLAGS
        return all(values[position] in flags for position in self._flags)


class OneRowReaders:
    """The one-row decoders a version has, tried in the order the last request chose.

    Args:
        spec: the version's features.
        columns: whether it takes one tensor per feature this way (a typed decoder exists).
        matrix: whether it takes one ``[1, k]`` tensor this way (numbers only, plain encoder).
    """

    def __init__(self, spec: FeatureSpec, *, columns: bool, matrix: bool) -> None:
        self._columns = OneRowDecoder(spec) if columns else None
        self._matrix = OneMatrixRowDecoder(spec) if matrix else None
        self._matrix_first = False  # only an order to try: a race between forms is harmless

    def read(self, header: bytes, data: memoryview) -> tuple[Any, Any, bool] | None:
        """The row's values, the request, and whether it came as one ``[1, k]`` tensor.

        None when the general way must decide.
        """
        if self._matrix_first:
            found = self._read_matrix(header, data) or self._read_columns(header, data)
        else:
            found = self._read_columns(header, data) or self._read_matrix(header, data)
        if found is not None:
            self._matrix_first = found[2]
        return found

    def _read_columns(self, header: bytes, data: memoryview) -> tuple[Any, Any, bool] | None:
        if self._columns is None or data:
            return None
        found = self._columns.decode(header)
        return None if found is None else (*found, False)

    def _read_matrix(self, header: bytes, data: memoryview) -> tuple[Any, Any, bool] | None:
        if self._matrix is None:
            return None
        found = self._matrix.decode(header, data)
        return None if found is None else (*found, True)
