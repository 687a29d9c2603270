"""The audit log: every admin action and every refused request, in the metadata database.

Admin actions are few and written before their answer is sent. Refusals can come in
floods (a scanner, a client with a revoked key), so they are queued and written in
batches by one thread; a full queue drops entries and says how many, rather than let
unauthenticated traffic cost a database write each.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Engine, Index, Integer, String, Table, insert, select

from tabops.database import metadata, stored_utc

logger = logging.getLogger("tabops.security")

audit_table = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(32)),
    Column("key_name", String(100)),
    Column("action", String(64), nullable=False),
    Column("target", String(300)),
    Column("outcome", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("client", String(100)),
    Column("request_id", String(64)),
    Index("ix_audit_log_at", "at"),
)

_QUEUED = 10_000
_BATCH = 500
_WARN_EVERY_SECONDS = 60.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AuditEntry:
    """One audited event: who (key), did what (action) to what (target), and how it ended."""

    action: str
    outcome: str
    status: int
    target: str | None = None
    key_id: str | None = None
    key_name: str | None = None
    client: str | None = None
    request_id: str | None = None
    at: datetime = field(default_factory=_now)

    def row(self) -> dict[str, Any]:
        """The entry as a row, texts cut to their column's width."""
        row = asdict(self)
        for name, width in (("target", 300), ("key_name", 100), ("client", 100)):
            if row[name] is not None:
                row[name] = row[name][:width]
        return row


class AuditLog:
    """Writes and reads the ``audit_log`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.Queue[AuditEntry | None] = queue.Queue(maxsize=_QUEUED)
        self._dropped = 0
        self._warned_at = float("-inf")
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, entry: AuditEntry) -> None:
        """Write ``entry`` now (an admin action: few, and each must be kept)."""
        with self.engine.begin() as connection:
            connection.execute(insert(audit_table).values(**entry.row()))

    def record_later(self, entry: AuditEntry) -> None:
        """Queue ``entry`` for the writer thread (a refusal: cheap, never blocks)."""
        self._start()
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self._dropped += 1
            now = time.monotonic()
            if now - self._warned_at > _WARN_EVERY_SECONDS:
                self._warned_at = now
                logger.warning("audit queue full: %d refusals not recorded", self._dropped)

    def recent(
        self,
        limit: int = 100,
        action: str | None = None,
        outcome: str | None = None,
        key_id: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        """The newest entries first, filtered by whichever arguments are given."""
        table = audit_table
        query = select(table).order_by(table.c.id.desc()).limit(limit)
        if action is not None:
            query = query.where(table.c.action == action)
        if outcome is not None:
            query = query.where(table.c.outcome == outcome)
        if key_id is not None:
            query = query.where(table.c.key_id == key_id)
        if since is not None:
            query = query.where(table.c.at >= since)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        entries = []
        for row in rows:
            values = {name: row[name] for name in AuditEntry.__dataclass_fields__}
            values["at"] = stored_utc(values["at"])
            entries.append(AuditEntry(**values))
        return entries

    def flush(self) -> None:
        """Wait until every queued entry is written."""
        if self._writer is not None:
            self._queue.join()

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        writer = self._writer
        if writer is not None:
            self._queue.put(None)
            writer.join()
            self._writer = None

    def _start(self) -> None:
        if self._writer is not None:
            return
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write, name="tabops-audit", daemon=True
                )
                self._writer.start()

    def _write(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            entries = [entry for entry in batch if entry is not None]
            try:
                if entries:
                    with self.engine.begin() as connection:
                        connection.execute(insert(audit_table), [e.row() for e in entries])
            except Exception:  # the database is away: say so, keep serving
                logger.exception("could not write %d audit entries", len(entries))
            finally:
                for _ in batch:
                    self._queue.task_done()
            if None in batch:
                return
