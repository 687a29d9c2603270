"""The lean request path: JSON bytes straight to an encoded matrix, typed by the spec.

A msgspec decoder generated from the feature spec parses and type-checks a record (or a
batch of them) in one pass in C, with the rules of ``tabops.validation``: numbers are
finite numbers (not text, not booleans), integers are whole numbers (``3`` or ``3.0``)
within 64 bits, flags are 0, 1, true or false (``0.0`` and ``1.0`` too), categories are
text, only nullable features may be null or absent, and no unknown field is allowed.
Whenever it refuses a body, the caller runs the full validation, which names
every problem: it never decides an error on its own.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import msgspec
import numpy as np

from tabops.model.encoder import UNKNOWN_CATEGORY, FeatureEncoder
from tabops.schema import ColumnSpec, FeatureSpec, Kind

# An integer or a flag may also come written as a float (3.0, 0.0: what JSON writers produce
# once a column has held a gap); msgspec checks either form in C, the integer form first
# (the common one, and the faster to decode). Beyond 2**53 a float no longer tells whether
# the integer fitted in 64 bits: such (rare) floats go to full validation, which reads them.
_EXACT = 2.0**53
_SPLIT_ORDERS_KEPT = 16  # column orders of dataframe_split bodies with a decoder made
_SplitRows = tuple["msgspec.json.Decoder[Any]", Callable[[Any], tuple[Any, ...]] | None]
"""The decoder of a column order's rows, and what puts a row in spec order (None: it is)."""
_TYPES: dict[Kind, Any] = {
    Kind.NUMERIC: float,
    Kind.INTEGER: Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
    | Annotated[float, msgspec.Meta(multiple_of=1, ge=-_EXACT, le=_EXACT)],
    Kind.BOOLEAN: bool
    | Annotated[int, msgspec.Meta(ge=0, le=1)]
    | Annotated[float, msgspec.Meta(ge=0, le=1, multiple_of=1)],
}


def value_type(column: ColumnSpec) -> Any:
    """The msgspec type one JSON value of a feature is decoded as (None allowed if nullable)."""
    kind = _TYPES.get(column.kind, str)
    return kind | None if column.nullable else kind


class LeanDecoder:
    """Decodes request bodies of one model version into rows of its encoder's matrix."""

    def __init__(self, spec: FeatureSpec, encoder: FeatureEncoder) -> None:
        features = spec.features
        if [c.name for c in features] != list(encoder.features):
            raise ValueError("the encoder's features do not match the spec")
        fields: list[Any] = []
        for position, column in enumerate(features):
            field = f"f{position}"
            kind = value_type(column)
            fields.append((field, kind, None) if column.nullable else (field, kind))
        rename = {f"f{position}": column.name for position, column in enumerate(features)}
        record = msgspec.defstruct(
            "Record",
            fields,
            rename=rename,
            forbid_unknown_fields=True,
            kw_only=True,
            gc=False,  # records hold no references cycles: keep them out of the collector
        )
        batch = msgspec.defstruct(
            "Batch",
            [("records", list[record])],  # type: ignore[valid-type]  # a generated type
            forbid_unknown_fields=True,
        )
        self._one = msgspec.json.Decoder(record)
        self._many = msgspec.json.Decoder(batch)
        self._record = record
        self._listed: dict[str, msgspec.json.Decoder[Any]] = {}
        self._names = [column.name for column in features]
        self._row_types = tuple(value_type(column) for column in features)
        self._split: msgspec.json.Decoder[Any] | None = None
        self._split_orders: dict[tuple[str, ...], _SplitRows] = {}
        self._astuple = msgspec.structs.astuple
        categories = encoder.categories or {}
        self._codes = {
            position: {str(v): float(code) for code, v in enumerate(categories[column.name])}
            for position, column in enumerate(features)
            if column.kind is Kind.CATEGORICAL
        }
        nullable = set(encoder.nullable)
        self._nullable = [i for i, c in enumerate(features) if c.name in nullable]
        self._fill = np.asarray(encoder.fill_, dtype=np.float64)
        self._plain = not self._codes and not self._nullable

    def decode_one(self, body: bytes) -> tuple[Any, ...] | None:
        """One record's values in spec order, or None when full validation must decide."""
        try:
            values: tuple[Any, ...] = self._astuple(self._one.decode(body))
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            return None
        return values

    def decode_batch(self, body: bytes) -> list[tuple[Any, ...]] | None:
        """A ``{"records": [...]}`` body's records, or None when full validation must decide."""
        try:
            records = getattr(self._many.decode(body), "records")  # noqa: B009  # generated type
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            return None
        astuple = self._astuple
        return [astuple(record) for record in records]

    def decode_listed(
        self, body: bytes, key: str
    ) -> tuple[list[tuple[Any, ...]], dict[str, Any] | None] | None:
        """The records a body lists under ``key``, beside optional ``params``.

        For protocols that name the list otherwise (MLflow's ``dataframe_records``). None
        when full validation must decide: another shape, an unknown field, a wrong type.
        """
        decoder = self._listed.get(key)
        if decoder is None:
            listed = msgspec.defstruct(
                "Listed",
                [(key, list[self._record]), ("params", dict[str, Any] | None, None)],  # type: ignore[name-defined]  # a generated type
                forbid_unknown_fields=True,
            )
            decoder = self._listed[key] = msgspec.json.Decoder(listed)
        try:
            document = decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            return None
        astuple = self._astuple
        records = getattr(document, key)
        return [astuple(record) for record in records], document.params

    def decode_split(
        self, body: bytes
    ) -> tuple[list[tuple[Any, ...]], dict[str, Any] | None] | None:
        """The rows of ``{"dataframe_split": {"columns", "data", "index"?}, "params"?}``.

        Only when the columns are the features, in spec order or any other (each row typed
        by position, then put in spec order); None otherwise, for full validation to decide
        (a missing or unknown column, a wrong type, ...).
        """
        if self._split is None:
            split = msgspec.defstruct(
                "Split",
                [("columns", list[str]), ("data", msgspec.Raw), ("index", list[Any] | None, None)],
                forbid_unknown_fields=True,
            )
            body_type = msgspec.defstruct(
                "SplitBody",
                [("dataframe_split", split), ("params", dict[str, Any] | None, None)],
                forbid_unknown_fields=True,
            )
            self._split = msgspec.json.Decoder(body_type)
        try:
            document = self._split.decode(body)
            found = document.dataframe_split
            rows = self._split_rows(tuple(found.columns))
            if rows is None:
                return None
            decoder, in_spec_order = rows
            data = decoder.decode(found.data)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            return None
        if found.index is not None and len(found.index) != len(data):
            return None
        if in_spec_order is not None:
            data = list(map(in_spec_order, data))
        return data, document.params

    def _split_rows(
        self, columns: tuple[str, ...]
    ) -> (
        tuple[msgspec.json.Decoder[Any], Callable[[tuple[Any, ...]], tuple[Any, ...]] | None] | None
    ):
        """The decoder of rows whose values follow ``columns``, and what puts them in spec order.

        None when the columns are not the features. Decoders are kept for a few orders.
        """
        known = self._split_orders.get(columns)
        if known is not None:
            return known
        if len(columns) != len(self._names) or set(columns) != set(self._names):
            return None
        position = {name: index for index, name in enumerate(self._names)}
        types = tuple(self._row_types[position[name]] for name in columns)
        decoder = msgspec.json.Decoder(list[tuple.__class_getitem__(types)])  # type: ignore[misc]  # typed rows
        order = [columns.index(name) for name in self._names]
        # itemgetter of two or more positions gives a tuple; one column is in order already.
        reorder = operator.itemgetter(*order) if order != list(range(len(order))) else None
        if len(self._split_orders) >= _SPLIT_ORDERS_KEPT:
            self._split_orders.clear()
        self._split_orders[columns] = (decoder, reorder)
        return decoder, reorder

    def encode(self, rows: Sequence[tuple[Any, ...]]) -> np.ndarray:
        """The encoder's matrix for decoded rows: codes, filled gaps, missing indicators."""
        return self._fill_gaps(self._raw(rows))

    def _raw(self, rows: Sequence[tuple[Any, ...]]) -> np.ndarray:
        """Numbers and category codes in spec order, NaN for gaps, room for indicators."""
        if self._plain:
            width = len(self._fill)
            flat = np.fromiter(
                itertools.chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width
            )
            return flat.reshape(len(rows), width)
        columns: list[Any] = list(zip(*rows, strict=True)) if rows else [()] * len(self._fill)
        matrix = np.empty((len(rows), len(self._fill) + len(self._nullable)), dtype=np.float64)
        for position, values in enumerate(columns):
            codes = self._codes.get(position)
            if codes is not None:
                values = [math.nan if v is None else codes.get(v, UNKNOWN_CATEGORY) for v in values]
            matrix[:, position] = np.array(values, dtype=np.float64)
        return matrix

    def _fill_gaps(self, matrix: np.ndarray) -> np.ndarray:
        """Gaps filled with the training fill values, missing indicators set (in place)."""
        for offset, position in enumerate(self._nullable):
            column = matrix[:, position]
            missing = np.isnan(column)
            column[missing] = self._fill[position]
            matrix[:, len(self._fill) + offset] = missing
        return matrix
