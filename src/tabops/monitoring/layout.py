"""Where the prediction log lives on disk: Hive-style folders of named Parquet segments.

Layout: ``<root>/model=<name>/version=<n>/date=<YYYY-MM-DD>/<segment>.parquet``. A segment is
one flush of one process for one version and UTC day, named
``<process prefix>-<first group counter>-<last group counter>-<hour>-<seq>.parquet`` so that
a prediction id (24-hex group id = 12-hex prefix + 12-hex counter, then the row) names the
files that may hold it; ``hour`` is the UTC hour of its earliest row. A compacted file
(``...-<seq>c.parquet``) holds the rows of several segments, listed in its key-value metadata
with their row counts, in row order. Readers treat each segment as a unit read once: from
its own file, or from the compacted file listing it, which wins (so a crash between a
compaction's rename and its deletes shows no row twice). Files whose name starts with a dot
(temp files, the compaction lock) are never read.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

SOURCES_KEY = b"tabops.sources"
"""Key-value metadata of a compacted file: JSON ``[[segment name, rows], ...]`` in row order."""

_SEGMENT = re.compile(
    r"^(?P<prefix>[0-9a-f]{12})-(?P<first>[0-9a-f]{12})-(?P<last>[0-9a-f]{12})"
    r"-(?P<hour>[0-2][0-9])-(?P<seq>[0-9]{6,})(?P<compacted>c?)\.parquet$"
)
_PREDICTION_ID = re.compile(r"^[0-9a-f]{32}$")
LOG_COLUMNS = (
    "prediction_id",
    "request_id",
    "timestamp",
    "route",
    "key_id",
    "entity_id",
    "probability",
    "label",
    "positive",
    "threshold",
    "latency_ms",
    "features",
)
"""The columns of every segment (the model and version are in the folder names)."""


def is_prediction_id(text: str) -> bool:
    """Whether ``text`` is a prediction id: 32 lower-case hex digits."""
    return _PREDICTION_ID.match(text) is not None


def partition_folder(root: Path, model: str, version: int, day: date) -> Path:
    """The folder of one version's segments for one UTC day."""
    return root / f"model={model}" / f"version={version}" / f"date={day.isoformat()}"


@dataclass(frozen=True, slots=True)
class SegmentName:
    """What a segment's file name says: whose ids it may hold, its hour, whether compacted."""

    prefix: str
    first: str
    last: str
    hour: int
    seq: int
    compacted: bool = False

    @classmethod
    def parse(cls, name: str) -> SegmentName | None:
        """The parts of a segment's file name; None for any other file."""
        found = _SEGMENT.match(name)
        if found is None:
            return None
        return cls(
            found["prefix"],
            found["first"],
            found["last"],
            int(found["hour"]),
            int(found["seq"]),
            bool(found["compacted"]),
        )

    @property
    def file_name(self) -> str:
        """The file name these parts make."""
        mark = "c" if self.compacted else ""
        return (
            f"{self.prefix}-{self.first}-{self.last}-{self.hour:02d}-{self.seq:06d}{mark}.parquet"
        )

    def may_hold(self, group_id: str) -> bool:
        """Whether ids of the group ``group_id`` (24 hex digits) may be in this file."""
        return group_id[:12] == self.prefix and self.first <= group_id[12:24] <= self.last


def compacted_sources(path: Path) -> list[tuple[str, int]]:
    """The segments a compacted file holds, with their row counts, in row order."""
    metadata = pq.read_schema(path).metadata or {}
    return [(str(name), int(rows)) for name, rows in json.loads(metadata.get(SOURCES_KEY, b"[]"))]


@dataclass(frozen=True)
class SegmentPart:
    """One file to read, whole (``ranges`` None) or only some row ranges, and its segments."""

    path: Path
    ranges: tuple[tuple[int, int], ...] | None
    units: frozenset[str]


def segment_files(folder: Path) -> dict[str, SegmentName]:
    """The segment and compacted files of a folder, by file name."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return {}
    parsed = {name: SegmentName.parse(name) for name in names}
    return {name: segment for name, segment in parsed.items() if segment is not None}


def plan_folder(folder: Path, done: frozenset[str] = frozenset()) -> list[SegmentPart]:
    """What to read for every segment of ``folder`` not in ``done``, each exactly once."""
    files = segment_files(folder)
    parts: list[SegmentPart] = []
    covered: set[str] = set(done)
    for name in sorted(n for n, segment in files.items() if segment.compacted):
        try:
            sources = compacted_sources(folder / name)
        except FileNotFoundError:  # pruned meanwhile
            continue
        ranges, units, offset = [], [], 0
        for source, rows in sources:
            if source not in covered:
                ranges.append((offset, offset + rows))
                units.append(source)
            offset += rows
        covered.update(source for source, _rows in sources)
        if units:
            whole = len(units) == len(sources)
            parts.append(
                SegmentPart(folder / name, None if whole else tuple(ranges), frozenset(units))
            )
    for name in sorted(n for n, segment in files.items() if not segment.compacted):
        if name not in covered:
            parts.append(SegmentPart(folder / name, None, frozenset([name])))
    return parts


def _date_of(folder: Path) -> date | None:
    try:
        return date.fromisoformat(folder.name.removeprefix("date="))
    except ValueError:
        return None


def date_folders(version_folder: Path) -> list[tuple[date, Path]]:
    """The day folders of one version, oldest first."""
    if not version_folder.is_dir():
        return []
    found = [(_date_of(child), child) for child in version_folder.glob("date=*")]
    return sorted((day, child) for day, child in found if day is not None)
