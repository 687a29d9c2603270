"""Upkeep of the prediction log on disk: compacting closed hours, deleting old days.

A flush a second per process makes 3,600 segments an hour. Once an hour is closed (its end
plus ``GRACE`` has passed), the segments of one process for that hour are merged into one
compacted file, written atomically with the source names and row counts in its metadata;
the sources are deleted only after the rename. Readers prefer the compacted file, so a crash
between the rename and the deletes shows no row twice, and the next compaction finishes the
deletes. One process at a time compacts a folder: an ``fcntl`` lock on ``.compact.lock``
(others skip the folder until the next round). Compacted files are never compacted again;
late segments of a compacted hour make a second compacted file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tabops.atomic import write_with
from tabops.monitoring.layout import (
    SOURCES_KEY,
    SegmentName,
    compacted_sources,
    date_folders,
    segment_files,
)

logger = logging.getLogger("tabops.monitoring")

GRACE = timedelta(minutes=2)
"""How long after its end an hour is left open to late flushes before it is compacted."""
ROW_GROUP_ROWS = 65_536
"""Rows gathered before a compacted file's row group is written (bounds memory)."""
STALE_TEMP_SECONDS = 3_600.0
"""A temp file this old was left by a process that died while writing it."""
LOCK_FILE = ".compact.lock"


def version_folders(root: Path) -> Iterator[Path]:
    """Every ``model=*/version=*`` folder of the log."""
    for model in sorted(root.glob("model=*")):
        yield from sorted(model.glob("version=*"))


def compact_log(root: Path, now: datetime) -> int:
    """Compact every closed hour of the log; the number of compacted files written."""
    made = 0
    for version in version_folders(root):
        for _day, folder in date_folders(version):
            made += compact_folder(folder, now)
    return made


def compact_folder(folder: Path, now: datetime) -> int:
    """Compact the closed hours of one day folder (skipped while another process does)."""
    day = datetime.fromisoformat(folder.name.removeprefix("date=")).replace(tzinfo=UTC)
    with _locked(folder) as locked:
        if not locked:
            return 0
        files = segment_files(folder)
        held = {
            s for n, f in files.items() if f.compacted for s, _rows in compacted_sources(folder / n)
        }
        groups: dict[tuple[str, int], list[SegmentName]] = {}
        for name, segment in files.items():
            if segment.compacted:
                continue
            if name in held:  # a crash came between a compaction's rename and its deletes
                (folder / name).unlink(missing_ok=True)
            elif day + timedelta(hours=segment.hour + 1) + GRACE <= now:
                groups.setdefault((segment.prefix, segment.hour), []).append(segment)
        return sum(_compact(folder, group) for group in groups.values() if len(group) > 1)


def _compact(folder: Path, sources: list[SegmentName]) -> int:
    """Merge ``sources`` (one process, one hour) into one file, then delete them."""
    sources = sorted(sources, key=lambda s: (s.first, s.seq))
    schema = pq.read_schema(folder / sources[0].file_name).remove_metadata()
    same = [s for s in sources if pq.read_schema(folder / s.file_name).remove_metadata() == schema]
    if len(same) < 2:
        return 0
    listed = [[s.file_name, pq.read_metadata(folder / s.file_name).num_rows] for s in same]
    first = same[0]
    target = SegmentName(
        first.prefix,
        min(s.first for s in same),
        max(s.last for s in same),
        first.hour,
        min(s.seq for s in same),
        compacted=True,
    )
    tagged = schema.with_metadata({SOURCES_KEY: json.dumps(listed).encode()})

    def write(temp: Path) -> None:
        with pq.ParquetWriter(temp, tagged) as writer:
            pending: list[pa.Table] = []
            rows = 0
            for source in same:
                table = pq.read_table(folder / source.file_name).replace_schema_metadata(None)
                pending.append(table)
                rows += table.num_rows
                if rows >= ROW_GROUP_ROWS:
                    writer.write_table(pa.concat_tables(pending))
                    pending, rows = [], 0
            if pending:
                writer.write_table(pa.concat_tables(pending))

    write_with(folder / target.file_name, write, store="prediction log")
    for source in same:
        (folder / source.file_name).unlink(missing_ok=True)
    return 1


def prune_log(root: Path, retention_days: float, now: datetime) -> int:
    """Delete the day folders wholly older than ``retention_days``; how many were deleted.

    Temp files left by processes that died while writing are deleted too.
    """
    oldest = now - timedelta(days=retention_days)
    deleted = 0
    for version in version_folders(root):
        for day, folder in date_folders(version):
            ends = datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=1)
            if ends <= oldest:
                shutil.rmtree(folder, ignore_errors=True)
                deleted += 1
            else:
                _remove_stale_temp_files(folder)
    return deleted


def _remove_stale_temp_files(folder: Path) -> None:
    cutoff = time.time() - STALE_TEMP_SECONDS
    for entry in os.scandir(folder):
        if entry.name.startswith(".") and entry.name != LOCK_FILE:
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue


@contextmanager
def _locked(folder: Path) -> Iterator[bool]:
    """Whether this process holds the folder's compaction lock for the block."""
    try:
        handle = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # pruned meanwhile
        yield False
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(handle)
