"""Windows over the prediction log: the last stretch of time, or the last so many predictions.

A window is written as a time (``30m``, ``1h``, ``1d``, ``7d``) or as a count of predictions
(``5000``: the model's latest 5,000). Either way it becomes a span ``[since, until)`` of the
log, so every reader filters the same way; a count is turned into a span by reading only the
timestamps of the newest days until enough rows are seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from tabops.errors import InvalidRequestError, Problem
from tabops.monitoring.segments import LogReader
from tabops.monitoring_rules import parse_window, window_rows

MAX_BUCKETS = 366
"""The most points a series over time may have."""


@dataclass(frozen=True)
class Window:
    """A window as written: a length of time, or a number of predictions."""

    text: str
    length: timedelta | None = None
    rows: int | None = None

    @classmethod
    def parse(cls, text: str, field: str = "window") -> Window:
        """``1h``, ``1d``, ``7d`` ... or a count of predictions such as ``5000``.

        Raises:
            InvalidRequestError: neither, naming ``field``.
        """
        try:
            rows = window_rows(text)
            if rows is not None:
                return cls(text, rows=rows)
            return cls(text, length=parse_window(text))
        except ValueError as exc:
            raise InvalidRequestError(str(exc), [Problem(field, str(exc))]) from None

    def span(self, log: LogReader, model: str, until: datetime) -> tuple[datetime, datetime]:
        """The ``[since, until)`` this window covers, ending at ``until``."""
        if self.length is not None:
            return until - self.length, until
        assert self.rows is not None
        return latest_rows_since(log, model, self.rows, until), until


def parse_moment(text: str, field: str, now: datetime) -> datetime:
    """A time given as a duration back from ``now`` (``7d``) or an ISO date or date-time.

    Raises:
        InvalidRequestError: neither, naming ``field``.
    """
    try:
        return now - parse_window(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        problem = "not a duration such as '7d' or an ISO date such as '2026-11-01'"
        raise InvalidRequestError(f"{field}: {problem}", [Problem(field, problem)]) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def latest_rows_since(log: LogReader, model: str, rows: int, until: datetime) -> datetime:
    """The time of the ``rows``-th latest prediction of ``model`` before ``until``.

    Reads the timestamp column of the newest days first and stops as soon as enough rows
    are seen; with fewer rows logged, the time of the oldest.
    """
    days = log.days(model)[::-1]
    seen: list[np.ndarray] = []
    count = 0
    for day in days:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if start >= until:
            continue
        end = min(start + timedelta(days=1), until)
        stamps = [
            _micros(batch.column("timestamp"))
            for batch in log.batches(model, since=start, until=end, columns=["timestamp"])
        ]
        if stamps:
            day_stamps = np.concatenate(stamps)
            seen.append(day_stamps)
            count += len(day_stamps)
        if count >= rows:
            break
    if not seen:
        return until
    every = np.sort(np.concatenate(seen))
    first = every[max(len(every) - rows, 0)]
    return datetime.fromtimestamp(0, UTC) + timedelta(microseconds=int(first))


def buckets(since: datetime, until: datetime, length: timedelta | None) -> list[datetime]:
    """Edges of the points of a series: every ``length`` from ``since`` to ``until``.

    One bucket (the two ends) without a length or when the span is not longer than it.

    Raises:
        InvalidRequestError: more than ``MAX_BUCKETS`` points.
    """
    if length is None or until - since <= length:
        return [since, until]
    count = -(-(until - since) // length)
    if count > MAX_BUCKETS:
        message = f"{count} windows between since and until; at most {MAX_BUCKETS}"
        raise InvalidRequestError(message, [Problem("since", message)])
    edges = [until - length * index for index in range(count, -1, -1)]
    edges[0] = since
    return edges


def bucket_index(stamps: np.ndarray, edges: list[datetime]) -> np.ndarray:
    """For timestamps in microseconds since the epoch, the bucket each falls in."""
    cuts = np.array([_epoch_micros(edge) for edge in edges[1:-1]], dtype=np.int64)
    return np.searchsorted(cuts, stamps, side="right")


def timestamps_of(batch: pa.RecordBatch) -> np.ndarray:
    """A batch's ``timestamp`` column as microseconds since the epoch."""
    return _micros(batch.column("timestamp"))


def _micros(column: pa.Array) -> np.ndarray:
    values = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64)


def _epoch_micros(moment: datetime) -> int:
    return (moment - datetime.fromtimestamp(0, UTC)) // timedelta(microseconds=1)
