"""One row sent as one JSON tensor per feature, decoded in one pass by a generated decoder.

This is the commonest inference request (one prediction), so it gets the v1 treatment: a
msgspec decoder generated from the feature spec reads the whole request in C, the tensor's
name as the tag of a union with one member per feature, whose datatype, shape (``[1]`` or
``[1, 1]``) and value are typed as the v1 typed decoder types a record's values
(``value_type``). A request it refuses goes the general way, which names every problem:
it never decides an error on its own.
"""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any, Literal

import msgspec

from tabops.model.decoder import value_type
from tabops.schema import FeatureSpec
from tabops.server.codecs.v2_binary import BYTES
from tabops.server.codecs.v2_tensors import ACCEPTED

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
