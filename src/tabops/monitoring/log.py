"""``PredictionLog``: the prediction sink that writes served predictions to Parquet segments.

On the serving thread ``record`` only samples a group and appends it to a bounded buffer
(counted in rows; a full buffer drops the group and counts it, never blocks, never raises).
A daemon thread takes the buffer every ``flush_seconds`` and writes one segment per model
version, UTC day and process prefix, atomically; it also compacts closed hours' segments
(every few minutes) and prunes days past retention (at most once an hour). A prediction is
findable in the log once the flush after it has run.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq

from tabops.atomic import write_with
from tabops.config import Settings
from tabops.metrics import LOG_DROPPED, LOG_ROWS
from tabops.monitoring.compaction import compact_log, prune_log
from tabops.monitoring.layout import SegmentName, partition_folder
from tabops.monitoring.rows import SegmentRows, Single, log_schema, single
from tabops.schema import FeatureSpec
from tabops.serving.hooks import ServedPredictions

logger = logging.getLogger("tabops.monitoring")

COMPACT_EVERY_SECONDS = 300.0
"""How often the writer compacts closed hours' segments."""
PRUNE_EVERY_SECONDS = 3_600.0
"""How often the writer deletes days past retention."""

# Segment numbers, shared by every log of the process: two logs over one folder (two apps in
# one test process) never write the same name.
_SEQUENCE = itertools.count()
_STORE = "prediction log"

_Key = tuple[str, int, date, str]  # model, version, UTC day, process prefix


@dataclass(frozen=True)
class LogStats:
    """What the log has done since it started."""

    logged: int
    dropped: int
    segments_written: int
    buffered: int
    last_error: str | None


class PredictionLog:
    """Writes served predictions under ``root`` (``<TABOPS_HOME>/predictions``).

    Args:
        root: the log's folder.
        sample_rate: the share of groups logged (1.0 logs all, without drawing).
        buffer_rows: the most rows waiting to be written; more are dropped and counted.
        flush_seconds: how often the writer thread writes the buffer.
        retention_days: days kept; None keeps every day.
        seed: seeds the sampling (tests).
    """

    def __init__(
        self,
        root: Path,
        *,
        sample_rate: float = 1.0,
        buffer_rows: int = 100_000,
        flush_seconds: float = 1.0,
        retention_days: float | None = 30.0,
        seed: int | None = None,
    ) -> None:
        self.root = root
        self.sample_rate = sample_rate
        self.buffer_rows = buffer_rows
        self.flush_seconds = flush_seconds
        self.retention_days = retention_days
        self._draw: Callable[[], float] = random.Random(seed).random
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._pending: list[Single | tuple[ServedPredictions, float]] = []
        # What segments of each (model, version) need: its feature spec and class labels.
        self._versions: dict[tuple[str, int], tuple[FeatureSpec, tuple[str, str]]] = {}
        self._pending_rows = 0
        self._logged = self._dropped = self._segments = 0
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_compacted = self._last_pruned = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PredictionLog:
        """A log under ``settings.home / "predictions"`` as ``settings.monitoring`` says."""
        monitoring = settings.monitoring
        return cls(
            settings.home / "predictions",
            sample_rate=monitoring.sample_rate,
            buffer_rows=monitoring.buffer_rows,
            flush_seconds=monitoring.flush_seconds,
            retention_days=monitoring.retention_days,
        )

    # The serving thread -----------------------------------------------------------------

    def record(self, served: ServedPredictions) -> None:
        """Keep one group of decisions for the next flush (sampled; dropped when full)."""
        if self.sample_rate < 1.0 and self._draw() >= self.sample_rate:
            return
        rows = len(served.decisions)
        if not rows:  # a file whose every row was invalid
            return
        latency_ms = (time.perf_counter() - served.context.started) * 1000
        version = (served.decisions.model, served.decisions.version)
        if version not in self._versions:
            self._versions[version] = _described(served)
        item = single(served, latency_ms) or (served, latency_ms)
        with self._lock:
            if self._closed or self._pending_rows + rows > self.buffer_rows:
                self._dropped += rows
                LOG_DROPPED.inc(rows)
                return
            self._pending.append(item)
            self._pending_rows += rows

    # The writer -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (once; a closed log stays closed)."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            now = time.monotonic()
            self._last_compacted = self._last_pruned = now - PRUNE_EVERY_SECONDS
            self._thread = threading.Thread(
                target=self._run, name="tabops-prediction-log", daemon=True
            )
            self._thread.start()

    def flush(self) -> int:
        """Write every buffered prediction now; the number of segments written."""
        with self._flushing:
            with self._lock:
                taken, self._pending, self._pending_rows = self._pending, [], 0
            if not taken:
                return 0
            buckets: dict[tuple[str, int, str, str], SegmentRows] = {}

            def bucket(key: tuple[str, int, str, str]) -> SegmentRows:
                found = buckets.get(key)
                if found is None:
                    found = buckets[key] = SegmentRows(*self._versions[key[:2]])
                return found

            singles = [item for item in taken if len(item) != 2]
            for key, items in _by_segment(singles):
                bucket(key).add_singles(items)
            for item in taken:
                if len(item) == 2:  # a group kept as its objects
                    served, latency_ms = item
                    decisions = served.decisions
                    day, prefix = decisions.timestamp[:10], decisions.id_prefix[:12]
                    bucket((decisions.model, decisions.version, day, prefix)).add(
                        served, latency_ms
                    )
            return sum(
                self._write((model, version, date.fromisoformat(day), prefix), rows)
                for (model, version, day, prefix), rows in buckets.items()
            )

    def compact(self, now: datetime | None = None) -> int:
        """Merge closed hours' segments into one file each; the number of files made."""
        return compact_log(self.root, now or datetime.now(UTC))

    def prune(self, now: datetime | None = None) -> int:
        """Delete the days past retention; the number of day folders deleted."""
        if self.retention_days is None:
            return 0
        return prune_log(self.root, self.retention_days, now or datetime.now(UTC))

    def close(self) -> None:
        """Write what is buffered and stop the writer thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._stop.set()
        if thread is not None:
            thread.join()
        self._flush_safely()

    @property
    def stats(self) -> LogStats:
        """Rows logged and dropped, segments written, rows waiting, the last write error."""
        with self._lock:
            return LogStats(
                self._logged, self._dropped, self._segments, self._pending_rows, self._last_error
            )

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self._flush_safely()
            self._maintain()

    def _flush_safely(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # the writer must outlive any one bad flush
            logger.exception("the prediction log could not be written")
            self._note_error(exc)

    def _maintain(self) -> None:
        """Compact and prune now and then; failures are logged and retried later."""
        now = time.monotonic()
        try:
            if now - self._last_compacted >= COMPACT_EVERY_SECONDS:
                self._last_compacted = now
                self.compact()
            if now - self._last_pruned >= PRUNE_EVERY_SECONDS:
                self._last_pruned = now
                self.prune()
        except Exception as exc:
            logger.exception("the prediction log could not be compacted or pruned")
            self._note_error(exc)

    def _write(self, key: _Key, rows: SegmentRows) -> int:
        """Write one segment; a failed write is logged and its rows counted as dropped."""
        model, version, day, prefix = key
        try:
            table = rows.table(log_schema(rows.spec))
            name = SegmentName(prefix, *rows.counters, rows.first_hour, next(_SEQUENCE))
            path = partition_folder(self.root, model, version, day) / name.file_name
            write_with(path, lambda temp: pq.write_table(table, temp), store=_STORE)
        except Exception as exc:  # a full disk (StorageFullError), any OSError, bad values
            logger.warning(
                "dropped %d logged predictions of %s v%s: %s", len(rows), model, version, exc
            )
            self._note_error(exc, dropped=len(rows))
            return 0
        with self._lock:
            self._logged += len(rows)
            self._segments += 1
        LOG_ROWS.inc(len(rows))
        return 1

    def _note_error(self, exc: Exception, dropped: int = 0) -> None:
        with self._lock:
            self._last_error = f"{type(exc).__name__}: {exc}"
            self._dropped += dropped
        if dropped:
            LOG_DROPPED.inc(dropped)


def _described(served: ServedPredictions) -> tuple[FeatureSpec, tuple[str, str]]:
    """A version's feature spec and its positive and negative class values as text."""
    decisions = served.decisions
    return served.predictor.spec, (str(decisions.positive[0]), str(decisions.negative[0]))


def _by_segment(
    singles: list[Single],
) -> list[tuple[tuple[str, int, str, str], list[Single]]]:
    """Single-row requests by the segment they go to: model, version, UTC day, process."""
    keys = [(item[0], item[1], item[4][:10], item[2][:12]) for item in singles]
    if not keys:
        return []
    if keys.count(keys[0]) == len(keys):  # the usual flush: one version, one day
        return [(keys[0], singles)]
    grouped: dict[tuple[str, int, str, str], list[Single]] = {}
    for key, item in zip(keys, singles, strict=True):
        grouped.setdefault(key, []).append(item)
    return list(grouped.items())
