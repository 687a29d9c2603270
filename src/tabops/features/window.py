"""Entity-window aggregates, point-in-time correct and vectorised.

For each row, an aggregate covers the same entity's rows whose time is strictly before the
row's time (rows sharing its timestamp are not "before" it), optionally only those within a
window (``30d``: times in ``[t - 30 days, t)``). Rows are sorted once by (entity, time,
original order); then every aggregate is an index computation over that order:

- ``end``: the first row of the run sharing this row's (entity, time): rows before it are
  the strictly earlier ones;
- ``start``: the entity's first row, or with a window the first row at or after ``t - w``
  (a binary search on (entity, time) pairs);
- count, sum and mean come from per-entity cumulative sums (difference at ``end`` and
  ``start``); min and max from per-entity cumulative extremes, or a time-based rolling
  window for bounded windows; first and last are the rows at ``start`` and ``end - 1``.

Cumulative sums restart at each entity, so an entity's values are the same whether it is
computed alone (serving) or within the whole table (training), bit for bit. Rows with no
entity or no time cannot be placed and get missing aggregates.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tabops.errors import DataError, Problem
from tabops.features.definitions import WindowFeature

_PAIR = np.dtype([("entity", "<i8"), ("time", "<i8")])
_PARSED_SHARE = 0.95


def to_datetimes(series: pd.Series, name: str) -> pd.Series:
    """A column as naive UTC microsecond timestamps; unparseable values become NaT.

    Microseconds reach year 294,247, so a job start in year 3021 is a real date (that a
    validity range can then reject), not an overflow.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        if pd.api.types.is_numeric_dtype(series.dtype) and not series.isna().all():
            raise DataError(
                f"column {name!r} holds numbers, not dates", [Problem(name, "expected dates")]
            )
        parsed = pd.to_datetime(series, errors="coerce", format="ISO8601")
        present = int(series.notna().sum())
        if present and parsed.notna().sum() < _PARSED_SHARE * present:
            with warnings.catch_warnings():  # mixed formats are parsed value by value
                warnings.simplefilter("ignore", UserWarning)
                parsed = pd.to_datetime(series, errors="coerce", format="mixed")
        series = parsed
    return series.astype("datetime64[us]")


@dataclass
class _Order:
    """The (entity, time, original position) order of the rows that can be placed."""

    rows: np.ndarray  # positions in the frame, in sorted order
    pairs: np.ndarray  # (entity code, time) of each sorted row
    group_start: np.ndarray
    end: np.ndarray  # exclusive end of the strictly earlier rows of the same entity


def _order(entities: pd.Series, times: pd.Series) -> _Order:
    placed = np.flatnonzero(entities.notna().to_numpy() & times.notna().to_numpy())
    codes, _ = pd.factorize(entities.to_numpy()[placed])
    stamps = times.to_numpy()[placed].view("i8")
    order = np.lexsort((placed, stamps, codes))
    codes, stamps = codes[order].astype("i8"), stamps[order]
    count = len(order)
    index = np.arange(count)
    new_group = np.ones(count, dtype=bool)
    new_group[1:] = codes[1:] != codes[:-1]
    new_run = new_group.copy()
    new_run[1:] |= stamps[1:] != stamps[:-1]
    pairs = np.empty(count, dtype=_PAIR)
    pairs["entity"], pairs["time"] = codes, stamps
    return _Order(
        rows=placed[order],
        pairs=pairs,
        group_start=np.maximum.accumulate(np.where(new_group, index, 0)),
        end=np.maximum.accumulate(np.where(new_run, index, 0)),
    )


def _starts(order: _Order, span: pd.Timedelta | None) -> np.ndarray:
    if span is None:
        return order.group_start
    bounds = order.pairs.copy()
    bounds["time"] -= int(span / pd.Timedelta(microseconds=1))
    return np.searchsorted(order.pairs, bounds, side="left")


def _at(values: np.ndarray, index: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``values[index]`` where ``valid``, NaN (or NaT) elsewhere."""
    safe = np.where(valid, index, 0)
    picked = values[safe] if len(values) else np.zeros(len(index), dtype=values.dtype)
    if picked.dtype.kind == "M":
        return np.where(valid, picked, np.datetime64("NaT"))
    picked = picked.astype(float)
    return np.where(valid, picked, np.nan)


def _cumulative(values: np.ndarray, order: _Order, start: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over sorted rows ``[start, end)``, from per-entity running sums."""
    groups = order.pairs["entity"]
    running = pd.Series(values).groupby(groups).cumsum().to_numpy()
    before_end = _at(running, order.end - 1, order.end > order.group_start)
    before_start = _at(running, start - 1, start > order.group_start)
    total = np.nan_to_num(before_end) - np.nan_to_num(before_start)
    return np.where(start < order.end, total, 0.0)


def _extreme(
    values: np.ndarray, order: _Order, feature: WindowFeature, start: np.ndarray
) -> np.ndarray:
    frame = pd.DataFrame(
        {"value": values, "entity": order.pairs["entity"], "time": order.pairs["time"]}
    )
    has_rows = start < order.end
    if feature.span is None:
        grouped = frame.groupby("entity")["value"]
        running = grouped.cummin() if feature.function == "min" else grouped.cummax()
        # cummin/cummax leave NaN at rows whose value is missing: carry the extreme over them
        carried = running.groupby(frame["entity"]).ffill().to_numpy()
        return _at(carried, order.end - 1, has_rows)
    frame["time"] = frame["time"].astype("datetime64[us]")
    rolling = frame.groupby("entity", sort=False).rolling(
        feature.span, on="time", closed="left", min_periods=1
    )["value"]
    result = rolling.min() if feature.function == "min" else rolling.max()
    # groupby-rolling returns the entity's rows in their (already sorted) order
    return np.where(has_rows, result.to_numpy(), np.nan)


def _numbers(column: pd.Series, name: str) -> np.ndarray:
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers.astype(float).to_numpy()


def compute_windows(
    frame: pd.DataFrame, features: Sequence[WindowFeature], entity: str, timestamp: str
) -> pd.DataFrame:
    """One column per window feature, aligned with ``frame``'s rows.

    Raises:
        DataError: the entity, time or an aggregated column is missing.
    """
    read = [entity, timestamp] + [f.column for f in features if f.column]
    missing = [c for c in dict.fromkeys(read) if c not in frame.columns]
    if missing:
        raise DataError(
            f"the table has no column(s) {', '.join(map(repr, missing))} that features read",
            [Problem(column, "column is missing") for column in missing],
        )
    times = to_datetimes(frame[timestamp], timestamp)
    order = _order(frame[entity], times)
    result = pd.DataFrame(index=frame.index)
    for feature in features:
        start = _starts(order, feature.span)
        has_rows = start < order.end
        if feature.function == "count":
            values = np.ones(len(order.rows))
            if feature.column is not None:
                values = frame[feature.column].notna().to_numpy()[order.rows].astype(float)
            sorted_result = _cumulative(values, order, start)
        elif feature.function in ("first", "last"):
            assert feature.column is not None
            column = frame[feature.column]
            if feature.column == timestamp:
                column = times
            raw = column.to_numpy()[order.rows]
            if raw.dtype.kind not in "fiubM":
                raw = _numbers(column, feature.column)[order.rows]
            index = start if feature.function == "first" else order.end - 1
            sorted_result = _at(raw, index, has_rows)
        else:
            assert feature.column is not None
            raw = _numbers(frame[feature.column], feature.column)[order.rows]
            if feature.function in ("min", "max"):
                sorted_result = _extreme(raw, order, feature, start)
            else:
                present = ~np.isnan(raw)
                total = _cumulative(np.where(present, raw, 0.0), order, start)
                if feature.function == "sum":
                    sorted_result = total
                else:
                    counted = _cumulative(present.astype(float), order, start)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        sorted_result = np.where(counted > 0, total / counted, np.nan)
        result[feature.name] = _scatter(sorted_result, order.rows, len(frame))
    return result


def _scatter(sorted_values: np.ndarray, rows: np.ndarray, length: int) -> np.ndarray:
    """Values in sorted order put back at their rows; rows never placed get NaN/NaT."""
    if sorted_values.dtype.kind == "M":
        out = np.full(length, np.datetime64("NaT"), dtype=sorted_values.dtype)
    else:
        out = np.full(length, np.nan)
    out[rows] = sorted_values
    return out
