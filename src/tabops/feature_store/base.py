"""The online store's interface, and the one way a table becomes stored rows.

Every backend stores what ``prepare_rows`` returns, so entity ids, values and digests mean the
same thing whichever database holds them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, Protocol

import numpy as np
import orjson
import pandas as pd

from tabops.errors import DataError

_SHOWN_IDS = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class OnlineRow:
    """The latest feature values of one entity in one view.

    Attributes:
        view: the feature view.
        entity_id: the entity's id as text.
        values: feature name -> float, int, bool, str, or None when missing.
        event_time: when the row's event happened (UTC), if the view has event times.
        materialized_at: when the row was written (UTC).
    """

    view: str
    entity_id: str
    values: dict[str, Any]
    event_time: datetime | None
    materialized_at: datetime


@dataclass
class MaterializeReport:
    """What one write did; ``removed`` counts rows dropped because the feature list changed."""

    view: str
    entities: int
    inserted: int
    updated: int
    unchanged: int
    seconds: float
    removed: int = 0


@dataclass(frozen=True)
class ViewSummary:
    """A view's entity column, ordered features, stored entities and last write time."""

    view: str
    entity: str
    features: list[str]
    entities: int
    updated: datetime


class FeatureStore(Protocol):
    """Latest feature row per view and entity id, written incrementally, read by id."""

    def write(
        self, view: str, table: pd.DataFrame, entity: str, event_time: str | None = None
    ) -> MaterializeReport:
        """Store one row per entity of ``table``; only changed rows are written."""
        ...

    def get(self, view: str, entity_id: str) -> OnlineRow | None:
        """The entity's row, or None when the view does not hold it."""
        ...

    def get_many(self, view: str, entity_ids: Sequence[str]) -> dict[str, OnlineRow]:
        """The rows the view holds among ``entity_ids``, by id."""
        ...

    def views(self) -> list[ViewSummary]:
        """Every view, by name."""
        ...

    def view(self, name: str) -> ViewSummary | None:
        """One view, or None when nothing was written to it."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class PreparedRow(NamedTuple):
    """One entity's row as stored: canonical JSON of its values and a digest of what it says."""

    entity_id: str
    values_json: bytes
    event_time: datetime | None
    digest: str


def prepare_rows(
    table: pd.DataFrame, entity: str, event_time: str | None = None
) -> tuple[list[str], list[PreparedRow]]:
    """The feature names and the stored form of every row of ``table``.

    The features are all columns but ``entity`` and ``event_time``, in table order. Ids become
    text (whole numbers without a decimal part), values plain JSON types (missing -> None,
    timestamps -> ISO-8601), event times UTC (naive ones are taken as UTC).

    Raises:
        DataError: a named column is missing, the table is empty or has no feature column,
            an id is missing, fractional or repeated, or a value is infinite or of a type
            JSON cannot hold.
    """
    columns = [str(column) for column in table.columns]
    if len(set(columns)) != len(columns):
        raise DataError(f"the table repeats column names: {columns}")
    for role, name in (("entity", entity), ("event_time", event_time)):
        if name is not None and name not in columns:
            raise DataError(f"the table has no {role} column {name!r}; it has {columns}")
    if table.empty:
        raise DataError("the table holds no rows")
    features = [name for name in columns if name not in (entity, event_time)]
    if not features:
        raise DataError(f"the table has no feature column besides {entity!r}")
    frame = table.set_axis(columns, axis=1)
    ids = entity_ids(frame[entity])
    _check_unique(ids, entity)
    times = _event_times(frame[event_time]) if event_time else [None] * len(ids)
    value_columns = [_column_values(frame[name], name) for name in features]
    rows = []
    for entity_id, moment, values in zip(ids, times, zip(*value_columns, strict=True), strict=True):
        # orjson writes shortest round-trip floats, so the text gives back the exact values.
        values_json = orjson.dumps(dict(zip(features, values, strict=True)))
        digest = row_digest(values_json, moment)
        rows.append(PreparedRow(entity_id, values_json, moment, digest))
    return features, rows


def row_digest(values_json: bytes, event_time: datetime | None) -> str:
    """A 128-bit digest of a row's values and event time: equal digests mean an equal row."""
    stamp = b"" if event_time is None else b"%d" % ((event_time - _EPOCH) // _MICROSECOND)
    return hashlib.blake2b(values_json + b"\x1f" + stamp, digest_size=16).hexdigest()


def entity_ids(column: pd.Series) -> list[str]:
    """Ids as text: ints and whole floats (5008804.0) as "5008804", strings unchanged.

    Raises:
        DataError: an id is missing, fractional, or neither a number nor a string.
    """
    array = column.to_numpy()
    if array.dtype.kind in "iu":
        return [str(value) for value in array.tolist()]
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise DataError(f"column {column.name!r} has missing or infinite entity ids")
        if (array != np.floor(array)).any():
            raise DataError(f"column {column.name!r} has fractional entity ids")
        return [str(int(value)) for value in array.tolist()]
    return [_entity_id(value, str(column.name)) for value in column.astype(object).tolist()]


def _entity_id(value: Any, column: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and value == int(value):
        return str(int(value))
    raise DataError(f"column {column!r} has an entity id that is missing or invalid: {value!r}")


def _check_unique(ids: list[str], entity: str) -> None:
    if len(set(ids)) == len(ids):
        return
    counts = pd.Series(ids).value_counts()
    repeated = counts[counts > 1].index.tolist()
    shown = ", ".join(repeated[:_SHOWN_IDS]) + (", ..." if len(repeated) > _SHOWN_IDS else "")
    raise DataError(
        f"column {entity!r} must hold one row per entity; {len(repeated)} ids repeat: {shown}"
    )


def _event_times(column: pd.Series) -> list[datetime | None]:
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise DataError(f"event time column {column.name!r} holds numbers, not timestamps")
    try:
        # ISO-8601 text of any precision or offset; datetime columns are taken as they are.
        stamps = pd.to_datetime(column, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0]
        raise DataError(f"event time column {column.name!r} is not ISO-8601: {reason}") from exc
    # Databases keep microseconds; rounding down first makes the digest match what is stored.
    moments = stamps.dt.floor("us").dt.to_pydatetime().tolist()
    return [None if moment is pd.NaT else moment for moment in moments]


def _column_values(column: pd.Series, name: str) -> list[Any]:
    array = column.to_numpy()
    kind = array.dtype.kind
    if kind in "biu":
        return list(array.tolist())
    if kind == "f":
        if np.isinf(array).any():
            raise DataError(f"feature {name!r} has infinite values, which JSON cannot hold")
        # NaN is the only value unequal to itself: it means missing.
        return [None if value != value else value for value in array.tolist()]
    return [_python_value(value, name) for value in column.astype(object).tolist()]


def _python_value(value: Any, name: str) -> Any:
    if isinstance(value, str):
        return value
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if np.isinf(number):
            raise DataError(f"feature {name!r} has infinite values, which JSON cannot hold")
        return None if np.isnan(number) else number
    if isinstance(value, (datetime, date, np.datetime64)):
        stamp = pd.Timestamp(value)
        return None if pd.isna(stamp) else stamp.isoformat()
    raise DataError(f"feature {name!r} holds a {type(value).__name__}, which is not storable")
