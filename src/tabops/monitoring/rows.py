"""The rows of one segment: served decisions turned into typed columns at once.

The Arrow arrays are made once per segment, with the schema the version's feature spec
gives (numbers as float64, booleans as bool, the rest as strings).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

from tabops.monitoring.layout import LOG_COLUMNS
from tabops.schema import ColumnSpec, FeatureSpec, Kind
from tabops.serving.decisions import Decisions, prediction_suffixes, row_suffix
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


Single = tuple[Any, ...]
"""One single-row request as plain values (see ``single``), in ``SINGLE_FIELDS`` order."""
SINGLE_FIELDS = (
    "model",
    "version",
    "prediction_id",
    "request_id",
    "timestamp",
    "route",
    "key_id",
    "entity_id",
    "probability",
    "positive",
    "threshold",
    "latency_ms",
    "features",
)
_PER_SINGLE = [f for f in SINGLE_FIELDS if f not in ("model", "version", "features")]


def single(served: ServedPredictions, latency_ms: float) -> Single | None:
    """A one-row group as one tuple of plain values, or None when it is not that simple.

    A single-row request kept as its objects (decisions, context, inputs) until the next
    flush costs the collector: a second's worth of them is scanned again and again. A tuple
    of strings, numbers and a tuple of feature values is dropped from the collector's view
    at its first pass, so logging a request costs about a microsecond on the serving thread.
    """
    decisions, context, features = served.decisions, served.context, served.features
    if len(decisions) != 1:
        return None
    if features.rows is not None and features.names is served.predictor.feature_names:
        values = features.rows[0]
        inputs = values if type(values) is tuple else tuple(values)
    elif features.records is not None:
        record = features.records[0]
        inputs = tuple([record.get(name) for name in served.predictor.feature_names])
    else:
        return None
    caller = context.caller
    return (
        decisions.model,
        decisions.version,
        decisions.id_prefix + row_suffix(decisions.first_index),
        context.request_id,
        decisions.timestamp,
        context.route,
        caller.key_id if caller is not None else None,
        context.entity_id,
        decisions.probabilities[0],
        decisions.is_positive[0],
        decisions.threshold,
        latency_ms,
        inputs,
    )


class SegmentRows:
    """Decisions of one version, day and process, kept until one segment is made of them.

    Single-row requests come as plain tuples (``single``) and are transposed into columns
    at once; larger groups keep their objects (few objects for many rows), and ``table``
    builds their columns in one pass, per-group values repeated for each group's rows by
    one ``take``. A flush of thousands of requests so costs a few microseconds a row, on
    the writer thread.
    """

    def __init__(self, spec: FeatureSpec, labels: tuple[str, str]) -> None:
        self.spec = spec
        self.labels = labels  # the positive and negative class values, as text
        self._features: list[ColumnSpec] = spec.features
        self._names = [column.name for column in self._features]
        self._singles: list[Single] = []
        self._groups: list[tuple[ServedPredictions, float]] = []
        self._rows = 0

    def __len__(self) -> int:
        return self._rows

    @property
    def counters(self) -> tuple[str, str]:
        """The lowest and highest group counter (12 hex digits) of the rows."""
        counters = [item[2][12:24] for item in self._singles]
        counters += [served.decisions.id_prefix[12:24] for served, _ in self._groups]
        if not counters:
            raise ValueError("no rows were added")
        return min(counters), max(counters)

    @property
    def first_hour(self) -> int:
        """The UTC hour of the earliest row."""
        # The decisions' times are ISO texts in UTC, of one format: they sort as times do.
        times = [item[4] for item in self._singles]
        times += [served.decisions.timestamp for served, _ in self._groups]
        if not times:
            raise ValueError("no rows were added")
        return datetime.fromisoformat(min(times)).hour

    def add_singles(self, items: list[Single]) -> None:
        """Keep single-row requests made plain by ``single``."""
        self._singles.extend(items)
        self._rows += len(items)

    def add(self, served: ServedPredictions, latency_ms: float) -> None:
        """Keep a group's decisions, with the features they were made from."""
        count = len(served.decisions)
        if count:
            self._groups.append((served, latency_ms))
            self._rows += count

    def table(self, schema: pa.Schema) -> pa.Table:
        """The rows as a table of ``schema``, sorted by prediction id."""
        parts = []
        if self._singles:
            parts.append(self._singles_table(schema))
        if self._groups:
            parts.append(self._groups_table(schema))
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        return table.sort_by("prediction_id")

    def _singles_table(self, schema: pa.Schema) -> pa.Table:
        fields = dict(zip(SINGLE_FIELDS, zip(*self._singles, strict=True), strict=True))
        yes, no = self.labels
        columns = {name: _array(fields[name], schema.field(name).type) for name in _PER_SINGLE}
        columns["label"] = pa.array([yes if flag else no for flag in fields["positive"]])
        inputs = list(zip(*fields["features"], strict=True))
        return _as_table(columns, inputs, schema)

    def _groups_table(self, schema: pa.Schema) -> pa.Table:
        groups = self._groups
        decisions = [served.decisions for served, _ in groups]
        counts = [len(group) for group in decisions]
        repeat = pa.array(np.repeat(np.arange(len(groups)), counts))
        contexts = [served.context for served, _ in groups]
        per_group: dict[str, list[Any]] = {
            "request_id": [context.request_id for context in contexts],
            "timestamp": [group.timestamp for group in decisions],
            "route": [context.route for context in contexts],
            "key_id": [c.caller.key_id if c.caller is not None else None for c in contexts],
            "entity_id": [context.entity_id for context in contexts],
            "threshold": [group.threshold for group in decisions],
            "latency_ms": [latency for _, latency in groups],
        }
        positive = list(chain.from_iterable(group.is_positive for group in decisions))
        yes, no = self.labels
        columns: dict[str, pa.Array] = {
            "prediction_id": pa.array(_prediction_ids(decisions), pa.string()),
            "probability": pa.array(
                list(chain.from_iterable(group.probabilities for group in decisions)),
                pa.float64(),
            ),
            "label": pa.array([yes if flag else no for flag in positive], pa.string()),
            "positive": pa.array(positive, pa.bool_()),
        }
        for name, values in per_group.items():
            array = _array(values, schema.field(name).type)
            columns[name] = array if len(groups) == self._rows else array.take(repeat)
        inputs = _feature_columns(groups, self._names, self._features)
        return _as_table(columns, inputs, schema)


def _array(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """Values as an array of ``kind``; times come as ISO texts, which Arrow parses at once."""
    if pa.types.is_timestamp(kind):
        return pa.array(values, pa.string()).cast(kind)
    return pa.array(values, kind)


def _as_table(
    columns: dict[str, pa.Array], inputs: Sequence[Sequence[Any]], schema: pa.Schema
) -> pa.Table:
    """The log's columns and the features (one sequence per feature) as one table."""
    struct_type = schema.field("features").type
    columns["features"] = pa.StructArray.from_arrays(
        [_typed(list(column), struct_type.field(i).type) for i, column in enumerate(inputs)],
        fields=list(struct_type),
    )
    return pa.Table.from_arrays([columns[name] for name in LOG_COLUMNS], schema=schema)


def _prediction_ids(decisions: list[Decisions]) -> list[str]:
    """Every row's prediction id: its group's prefix and its index as 8 hex digits."""
    stop = max(group.first_index + len(group) for group in decisions)
    suffixes = prediction_suffixes(stop)
    return [
        group.id_prefix + suffix
        for group in decisions
        for suffix in suffixes[group.first_index : group.first_index + len(group)]
    ]


def _feature_columns(
    groups: list[tuple[ServedPredictions, float]], names: list[str], columns: list[ColumnSpec]
) -> list[list[Any]]:
    """One list of values per feature, over every group in order.

    Groups whose inputs are tuples in the version's feature order (the fast path) are
    gathered and transposed together; the others are turned into columns one by one.
    """
    out: list[list[Any]] = [[] for _ in names]
    pending: list[tuple[Any, ...]] = []
    aligned: Sequence[str] | None = None  # a names list seen to be in the version's order

    def transpose_pending() -> None:
        for values, column in zip(out, zip(*pending, strict=True), strict=True):
            values.extend(column)
        pending.clear()

    for served, _ in groups:
        features, count = served.features, len(served.decisions)
        if features.rows is not None and (
            features.names is aligned or list(features.names) == names
        ):
            aligned = features.names
            pending.extend(features.rows)
            continue
        if pending:
            transpose_pending()
        for values, added in zip(out, _feature_lists(features, columns, count), strict=True):
            values.extend(added)
    if pending:
        transpose_pending()
    return out


def _feature_lists(features: FeatureRows, columns: list[ColumnSpec], count: int) -> list[list[Any]]:
    """One list of values per feature column, whichever form the route decoded them in."""
    names = [column.name for column in columns]
    matrix = features.columns()
    if matrix is not None:
        position = {name: index for index, name in enumerate(features.names)}
        return [matrix[position[name]] if name in position else [None] * count for name in names]
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
