"""How many predictions a model logged lately, from segment names and Parquet footers only.

No row is read: a segment's name says the UTC day and hour of its earliest row, and its
footer (or, for a compacted file, its list of sources) its row count. The count is exact to
the hour: a segment that began in the hour the window starts is counted whole. Files never
change once written, so their counts are remembered by path.
"""

from __future__ import annotations

import functools
import os
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from tabops.monitoring.layout import (
    SegmentName,
    compacted_sources,
    date_folders,
    segment_files,
)

_REMEMBERED_FILES = 65_536


def count_logged_since(root: Path, model: str, since: datetime) -> int:
    """The predictions of ``model`` (every version) logged under ``root`` from ``since`` on.

    Args:
        root: the prediction log's folder.
        model: the model's name.
        since: the window's start (a naive time is taken as UTC), to the hour.
    """
    start = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    first_hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    total = 0
    for version_folder in (root / f"model={model}").glob("version=*"):
        for day, folder in date_folders(version_folder):
            if day >= first_hour.date():
                total += _count_folder(folder, day, first_hour)
    return total


def _count_folder(folder: Path, day: date, first_hour: datetime) -> int:
    # Hours of this day from which on segments count (24: none of them).
    midnight = datetime.combine(day, time(), UTC)
    first = max(0, min(24, int((first_hour - midnight) / timedelta(hours=1))))
    files = segment_files(folder)
    covered: set[str] = set()
    total = 0
    # A compacted file lists the segments it replaced; those never count twice.
    for name, segment in sorted(files.items()):
        if not segment.compacted:
            continue
        try:
            sources, rows_by_hour = _compacted_summary(os.path.join(folder, name))
        except FileNotFoundError:  # pruned meanwhile
            continue
        if covered.isdisjoint(sources):
            total += sum(rows for hour, rows in rows_by_hour if hour >= first)
        else:  # rare: two compacted files listing one segment (a late second compaction)
            total += sum(
                rows
                for source, rows in _sources_of(os.path.join(folder, name))
                if source not in covered and _hour_of(source) >= first
            )
        covered.update(sources)
    for name, segment in files.items():
        if segment.compacted or segment.hour < first or name in covered:
            continue
        try:
            total += _rows_of(os.path.join(folder, name))
        except FileNotFoundError:  # compacted away meanwhile: its compacted file is newer
            continue
    return total


def _hour_of(name: str) -> int:
    parsed = SegmentName.parse(name)
    return parsed.hour if parsed is not None else -1


@functools.lru_cache(maxsize=_REMEMBERED_FILES)
def _rows_of(path: str) -> int:
    return int(pq.read_metadata(path).num_rows)


@functools.lru_cache(maxsize=_REMEMBERED_FILES)
def _sources_of(path: str) -> tuple[tuple[str, int], ...]:
    return tuple(compacted_sources(Path(path)))


@functools.lru_cache(maxsize=_REMEMBERED_FILES)
def _compacted_summary(path: str) -> tuple[frozenset[str], tuple[tuple[int, int], ...]]:
    """A compacted file's source names, and its rows by the hour their segments began."""
    sources = _sources_of(path)
    by_hour: dict[int, int] = {}
    for source, rows in sources:
        hour = _hour_of(source)
        by_hour[hour] = by_hour.get(hour, 0) + rows
    return frozenset(source for source, _rows in sources), tuple(sorted(by_hour.items()))
