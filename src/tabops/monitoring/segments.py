"""Reading the prediction log: batches of a model's rows, one prediction, many by id.

Pure pyarrow over the files ``layout.py`` describes, with bounded memory: a file is read a
batch at a time, and lookups by id open only the files whose names may hold the id. A
prediction is readable once the process that served it has flushed its buffer, which it does
every ``monitoring.flush_seconds``.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tabops.monitoring.layout import (
    LOG_COLUMNS,
    SegmentName,
    SegmentPart,
    date_folders,
    is_prediction_id,
    plan_folder,
    segment_files,
)

logger = logging.getLogger("tabops.monitoring")

_FEATURE = "features."
_REF_COLUMNS = ["prediction_id", "timestamp", "probability", "positive", "threshold", "entity_id"]
_ATTEMPTS = 3  # lookups racing a compaction look again, this many times at most


@dataclass(frozen=True, slots=True)
class LoggedRef:
    """What the labels and performance code need of one logged prediction."""

    version: int
    timestamp: datetime
    probability: float
    positive: bool
    threshold: float
    entity_id: str | None


class LogReader:
    """The prediction log under ``root``, read with bounded memory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def models(self) -> list[str]:
        """The models with logged predictions."""
        folders = self.root.glob("model=*")
        return sorted(p.name.removeprefix("model=") for p in folders if p.is_dir())

    def versions(self, model: str) -> list[int]:
        """The versions of ``model`` with logged predictions."""
        folders = (self.root / f"model={model}").glob("version=*")
        numbers = (p.name.removeprefix("version=") for p in folders)
        return sorted(int(n) for n in numbers if n.isdigit())

    def days(self, model: str) -> list[date]:
        """The UTC days with logged predictions of ``model`` (any version), oldest first."""
        return sorted(
            {
                day
                for version in self.versions(model)
                for day, _folder in date_folders(self._version_folder(model, version))
            }
        )

    def batches(
        self,
        model: str,
        version: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        columns: Iterable[str] | None = None,
        batch_rows: int = 65_536,
    ) -> Iterator[pa.RecordBatch]:
        """The logged rows of a model: one version, or every version with a ``version`` column.

        Args:
            model: the model's name.
            version: one version; None reads every version and adds a ``version`` column.
            since: only rows at or after this time (a naive time is taken as UTC).
            until: only rows before this time.
            columns: the columns to read, in this order (all when None); ``features.<name>``
                reads one feature as a flat column (nulls where a version lacks it).
            batch_rows: the most rows in one batch.

        Raises:
            ValueError: a column the log does not have.
        """
        wanted = _checked_columns(columns)
        start, end = _utc(since), _utc(until)
        numbers = self.versions(model) if version is None else [version]
        for number in numbers:
            for day, folder in date_folders(self._version_folder(model, number)):
                if (start and day < start.date()) or (end and day > end.date()):
                    continue
                for batch in _folder_batches(folder, wanted, start, end, batch_rows):
                    if version is None:
                        versions = pa.array([number] * batch.num_rows, pa.int64())
                        batch = batch.append_column("version", versions)
                    yield batch

    def find(self, prediction_id: str) -> dict[str, Any] | None:
        """One logged prediction as a JSON-ready dict; None when it is not (yet) logged."""
        if not is_prediction_id(prediction_id):
            return None
        group = prediction_id[:24]
        for _attempt in range(_ATTEMPTS):
            vanished = False
            for model in self.models():
                for version in self.versions(model):
                    for path in self._candidates(model, version, lambda s: s.may_hold(group)):
                        table = _rows_of(path, None, [prediction_id])
                        if table is None:
                            vanished = True
                        elif table.num_rows:
                            return _document(table.to_pylist()[0], model, version)
            if not vanished:
                break
        return None

    def locate(self, model: str, ids: Iterable[str]) -> dict[str, LoggedRef]:
        """Where many ids of ``model`` were logged; ids not found are left out of the answer."""
        wanted = _IdIndex(i for i in ids if is_prediction_id(i))
        found: dict[str, LoggedRef] = {}
        for _attempt in range(_ATTEMPTS):
            vanished = False
            for version in self.versions(model):
                for path in self._candidates(model, version, wanted.may_be_in):
                    name = SegmentName.parse(path.name)
                    looked_for = [i for i in wanted.ids_in(name) if i not in found] if name else []
                    table = _rows_of(path, _REF_COLUMNS, looked_for) if looked_for else None
                    vanished = vanished or (bool(looked_for) and table is None)
                    for row in table.to_pylist() if table is not None else []:
                        found.setdefault(row.pop("prediction_id"), LoggedRef(version, **row))
            if not vanished:
                break
        return found

    def _version_folder(self, model: str, version: int) -> Path:
        return self.root / f"model={model}" / f"version={version}"

    def _candidates(
        self, model: str, version: int, match: Callable[[SegmentName], bool]
    ) -> Iterator[Path]:
        """A version's files whose names say they may hold what ``match`` looks for.

        Newest day first, compacted files before segments within a day.
        """
        for _day, folder in reversed(date_folders(self._version_folder(model, version))):
            files = sorted(segment_files(folder).items(), key=lambda item: not item[1].compacted)
            yield from (folder / name for name, segment in files if match(segment))


class _IdIndex:
    """Prediction ids grouped by process prefix, then sorted by group counter."""

    def __init__(self, ids: Iterable[str]) -> None:
        self._by_prefix: dict[str, list[tuple[str, str]]] = {}
        for prediction_id in sorted(set(ids)):
            pairs = self._by_prefix.setdefault(prediction_id[:12], [])
            pairs.append((prediction_id[12:24], prediction_id))

    def _slice(self, name: SegmentName) -> list[tuple[str, str]]:
        pairs = self._by_prefix.get(name.prefix, [])
        low = bisect.bisect_left(pairs, (name.first, ""))
        high = bisect.bisect_right(pairs, (name.last, "\uffff"))
        return pairs[low:high]

    def may_be_in(self, name: SegmentName) -> bool:
        """Whether the file ``name`` may hold some of the ids."""
        return bool(self._slice(name))

    def ids_in(self, name: SegmentName) -> list[str]:
        """The ids the file ``name`` may hold."""
        return [prediction_id for _counter, prediction_id in self._slice(name)]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _checked_columns(columns: Iterable[str] | None) -> list[str] | None:
    if columns is None:
        return None
    wanted = list(columns)
    unknown = [c for c in wanted if c not in LOG_COLUMNS and not c.startswith(_FEATURE)]
    if unknown:
        raise ValueError(f"the prediction log has no column(s) {', '.join(unknown)}")
    return wanted


def _rows_of(path: Path, columns: list[str] | None, ids: list[str]) -> pa.Table | None:
    """The rows of ``path`` with these ids; None when the file is gone (compacted or pruned)."""
    try:
        return pq.read_table(path, columns=columns, filters=[("prediction_id", "in", ids)])
    except FileNotFoundError:
        return None


def _document(row: dict[str, Any], model: str, version: int) -> dict[str, Any]:
    """A logged row as the JSON-ready dict ``find`` answers."""
    return {
        "prediction_id": row["prediction_id"],
        "request_id": row["request_id"],
        "model": model,
        "version": version,
        "timestamp": row["timestamp"].isoformat(),
        "route": row["route"],
        "key_id": row["key_id"],
        "entity_id": row["entity_id"],
        "probability": row["probability"],
        "label": row["label"],
        "positive": row["positive"],
        "threshold": row["threshold"],
        "latency_ms": round(row["latency_ms"], 3),
        "features": row["features"],
    }


def _folder_batches(
    folder: Path,
    wanted: list[str] | None,
    since: datetime | None,
    until: datetime | None,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """The rows of one day folder, each segment read once even while it is compacted."""
    read = None if wanted is None else list(wanted)
    if read is not None and (since or until) and "timestamp" not in read:
        read.append("timestamp")
    done: set[str] = set()
    parts = plan_folder(folder)
    while parts:
        part = parts.pop(0)
        try:
            file = pq.ParquetFile(part.path)
        except FileNotFoundError:  # compacted meanwhile: its segments are in a new file
            parts = plan_folder(folder, frozenset(done))
            continue
        except (OSError, pa.ArrowException) as exc:
            logger.warning("skipping unreadable prediction log file %s: %s", part.path, exc)
            done |= part.units
            continue
        with file:
            for batch in _part_batches(file, part, read, batch_rows):
                kept = _within(batch, since, until)
                if kept.num_rows:
                    yield kept if wanted is None else _shaped(kept, wanted)
        done |= part.units


def _part_batches(
    file: pq.ParquetFile, part: SegmentPart, read: list[str] | None, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """A file's batches, cut to the part's row ranges when it has some."""
    offset = 0
    for batch in file.iter_batches(batch_size=batch_rows, columns=read):
        if part.ranges is None:
            yield batch
            continue
        for start, stop in part.ranges:
            low, high = max(start, offset), min(stop, offset + batch.num_rows)
            if low < high:
                yield batch.slice(low - offset, high - low)
        offset += batch.num_rows


def _within(
    batch: pa.RecordBatch, since: datetime | None, until: datetime | None
) -> pa.RecordBatch:
    if since is None and until is None:
        return batch
    stamps = batch.column("timestamp")
    keep = pa.array([True] * batch.num_rows)
    if since is not None:
        keep = pc.and_(keep, pc.greater_equal(stamps, pa.scalar(since, stamps.type)))
    if until is not None:
        keep = pc.and_(keep, pc.less(stamps, pa.scalar(until, stamps.type)))
    return batch.filter(keep)


def _shaped(batch: pa.RecordBatch, wanted: list[str]) -> pa.RecordBatch:
    """The requested columns in order, ``features.<name>`` as flat columns."""
    names = batch.schema.names
    struct = batch.column("features") if "features" in names else None
    arrays = []
    for name in wanted:
        if not name.startswith(_FEATURE):
            arrays.append(batch.column(name))
            continue
        feature = name.removeprefix(_FEATURE)
        if struct is not None and struct.type.get_field_index(feature) >= 0:
            arrays.append(struct.field(feature))
        else:
            arrays.append(pa.nulls(batch.num_rows))
    return pa.RecordBatch.from_arrays(arrays, names=wanted)
