"""The rows of one segment: groups of served decisions gathered column by column, then typed.

Each group adds its columns as whole lists (a batch of 10,000 rows costs a few list
extensions, not 10,000 dicts); the Arrow arrays are made once per segment, with the schema
the version's feature spec gives (numbers as float64, booleans as bool, the rest as strings).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pyarrow as pa

from tabops.monitoring.layout import LOG_COLUMNS
from tabops.schema import ColumnSpec, FeatureSpec, Kind
from tabops.serving.decisions import prediction_suffixes
from tabops.serving.hooks import FeatureRows, ServedPredictions

_KINDS: dict[Kind, pa.DataType] = {
    Kind.NUMERIC: pa.float64(),
    Kind.INTEGER: pa.float64(),
    Kind.BOOLEAN: pa.bool_(),
}


def feature_type(kind: Kind) -> pa.DataType:
    """The Arrow type a feature of ``kind`` is logged as."""
    return _KINDS.get(kind, pa.string())


def log_schema(spec: FeatureSpec) -> pa.Schema:
    """The schema of a version's segments: the common columns, its features as a struct."""
    features = pa.struct([pa.field(c.name, feature_type(c.kind)) for c in spec.features])
    return pa.schema(
        [
            pa.field("prediction_id", pa.string(), nullable=False),
            pa.field("request_id", pa.string(), nullable=False),
            pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("route", pa.string(), nullable=False),
            pa.field("key_id", pa.string()),
            pa.field("entity_id", pa.string()),
            pa.field("probability", pa.float64(), nullable=False),
            pa.field("label", pa.string(), nullable=False),
            pa.field("positive", pa.bool_(), nullable=False),
            pa.field("threshold", pa.float64(), nullable=False),
            pa.field("latency_ms", pa.float32(), nullable=False),
            pa.field("features", features, nullable=False),
        ]
    )


class SegmentRows:
    """Decisions of one version, day and process, gathered as columns for one segment."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._features: list[ColumnSpec] = spec.features
        self._columns: dict[str, list[Any]] = {
            name: [] for name in LOG_COLUMNS if name != "features"
        }
        self._values: list[list[Any]] = [[] for _ in self._features]
        self._first: datetime | None = None
        self._counters: tuple[str, str] | None = None

    def __len__(self) -> int:
        return len(self._columns["prediction_id"])

    @property
    def counters(self) -> tuple[str, str]:
        """The lowest and highest group counter (12 hex digits) of the rows."""
        if self._counters is None:
            raise ValueError("no rows were added")
        return self._counters

    @property
    def first_hour(self) -> int:
        """The UTC hour of the earliest row."""
        if self._first is None:
            raise ValueError("no rows were added")
        return self._first.hour

    def add(self, served: ServedPredictions, latency_ms: float) -> None:
        """Add a group's decisions, with the features they were made from."""
        decisions, context = served.decisions, served.context
        count, first = len(decisions), decisions.first_index
        if not count:
            return
        prefix = decisions.id_prefix
        suffixes = prediction_suffixes(first + count)[first : first + count]
        stamp = datetime.fromisoformat(decisions.timestamp)
        key_id = context.caller.key_id if context.caller is not None else None
        positive, negative = str(decisions.positive[0]), str(decisions.negative[0])
        columns = self._columns
        columns["prediction_id"].extend([prefix + suffix for suffix in suffixes])
        columns["label"].extend([positive if p else negative for p in decisions.is_positive])
        columns["positive"].extend(decisions.is_positive)
        columns["probability"].extend(decisions.probabilities)
        for name, value in (
            ("request_id", context.request_id),
            ("timestamp", stamp),
            ("route", context.route),
            ("key_id", key_id),
            ("entity_id", context.entity_id),
            ("threshold", decisions.threshold),
            ("latency_ms", latency_ms),
        ):
            columns[name].extend([value] * count)
        for values, added in zip(
            self._values, _feature_lists(served.features, self._features, count), strict=True
        ):
            values.extend(added)
        counter = prefix[12:24]
        low, high = self._counters or (counter, counter)
        self._counters = (min(low, counter), max(high, counter))
        self._first = stamp if self._first is None else min(self._first, stamp)

    def table(self, schema: pa.Schema) -> pa.Table:
        """The rows as a table of ``schema``, sorted by prediction id."""
        arrays = [pa.array(self._columns[name], schema.field(name).type) for name in self._columns]
        struct_type = schema.field("features").type
        features = pa.StructArray.from_arrays(
            [
                _typed(values, struct_type.field(index).type)
                for index, values in enumerate(self._values)
            ],
            fields=list(struct_type),
        )
        table = pa.Table.from_arrays([*arrays, features], schema=schema)
        return table.sort_by("prediction_id")


def _feature_lists(features: FeatureRows, columns: list[ColumnSpec], count: int) -> list[list[Any]]:
    """One list of values per feature column, whichever form the route decoded them in."""
    names = [column.name for column in columns]
    if features.rows is not None:
        position = {name: index for index, name in enumerate(features.names)}
        transposed = list(zip(*features.rows, strict=True)) if features.rows else []
        return [
            list(transposed[position[name]]) if name in position and transposed else [None] * count
            for name in names
        ]
    if features.records is not None:
        return [[record.get(name) for record in features.records] for name in names]
    frame = features.frame
    if frame is not None:
        lists = []
        for name in names:
            if name not in frame.columns:
                lists.append([None] * count)
                continue
            column = frame[name].astype(object)
            lists.append(column.where(column.notna(), None).tolist())
        return lists
    return [[None] * count for _ in names]


def _typed(values: list[Any], kind: pa.DataType) -> pa.Array:
    """``values`` as an array of ``kind``; values that do not convert one by one are null."""
    try:
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    try:  # one other type throughout (booleans sent as 0 and 1): Arrow casts it at once
        return pa.array(values).cast(kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        convert = _CONVERT.get(kind, str)
        return pa.array([_converted(value, convert) for value in values], kind)


def _converted(value: Any, convert: Callable[[Any], Any]) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return convert(value)
    except (TypeError, ValueError):
        return None


_CONVERT: dict[pa.DataType, Callable[[Any], Any]] = {pa.float64(): float, pa.bool_(): bool}
