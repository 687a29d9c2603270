"""Job records in the metadata database: the one source of truth about every job.

Each state change is a single conditional UPDATE, so two workers that were handed the same
job (a message re-queued after a crash) cannot both run it: only one ``claim`` matches a
queued row, and only the claim's holder can finish it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import RowMapping

from tabops.database import metadata
from tabops.errors import JobNotFoundError

JobKind = Literal["score", "train"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed"})

jobs_table = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("model", String(200)),
    Column("version", Integer),
    Column("input_format", String(16)),
    Column("params", JSON, nullable=False),
    Column("progress", Float, nullable=False, default=0.0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("owner", String(200)),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("started", DateTime(timezone=True)),
    Column("finished", DateTime(timezone=True)),
    Column("heartbeat", DateTime(timezone=True)),
    Column("result", JSON),
    Column("error", Text),
    Index("ix_jobs_status", "status"),
)


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands timestamps back without a zone; every stored time is UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass
class Job:
    """One job as stored: what to run, how far it got, and what came of it."""

    id: str
    kind: JobKind
    status: JobStatus
    created: datetime
    model: str | None = None
    version: int | None = None
    input_format: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    progress: float = 0.0
    attempts: int = 0
    owner: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    heartbeat: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    @classmethod
    def new(
        cls,
        kind: JobKind,
        *,
        model: str | None = None,
        version: int | None = None,
        input_format: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Job:
        """A queued job with a fresh id."""
        return cls(
            id=uuid.uuid4().hex,
            kind=kind,
            status="queued",
            created=now(),
            model=model,
            version=version,
            input_format=input_format,
            params=params or {},
        )

    def describe(self) -> dict[str, Any]:
        """The job's state as plain values: what the API and the CLI show."""
        return {
            "job_id": self.id,
            "kind": self.kind,
            "status": self.status,
            "model": self.model,
            "version": self.version,
            "progress": self.progress,
            "attempts": self.attempts,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "result": dict(self.result) if self.result is not None else None,
            "error": self.error,
        }

    @property
    def is_finished(self) -> bool:
        """Whether the job succeeded or failed (it will not change again)."""
        return self.status in FINISHED

    @classmethod
    def _from_row(cls, row: RowMapping) -> Job:
        values = dict(row)
        for name in ("created", "started", "finished", "heartbeat"):
            values[name] = _utc(values[name])
        return cls(**values)


class JobStore:
    """Job records over SQLAlchemy Core: SQLite by default, PostgreSQL by URL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, job: Job) -> None:
        """Store a new job."""
        values = {column.name: getattr(job, column.name) for column in jobs_table.columns}
        with self.engine.begin() as connection:
            connection.execute(insert(jobs_table).values(**values))

    def get(self, job_id: str) -> Job:
        """The job with this id.

        Raises:
            JobNotFoundError: no job has that id.
        """
        with self.engine.connect() as connection:
            row = (
                connection.execute(select(jobs_table).where(jobs_table.c.id == job_id))
                .mappings()
                .first()
            )
        if row is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        return Job._from_row(row)

    def recent(self, status: str | None = None, limit: int = 50) -> list[Job]:
        """The most recent jobs, newest first, optionally of one status."""
        query = select(jobs_table).order_by(jobs_table.c.created.desc()).limit(limit)
        if status is not None:
            query = query.where(jobs_table.c.status == status)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [Job._from_row(row) for row in rows]

    def count(self, status: str) -> int:
        """How many jobs have this status."""
        query = select(func.count()).select_from(jobs_table).where(jobs_table.c.status == status)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def claim(self, job_id: str, owner: str) -> Job | None:
        """Mark a queued job running for ``owner``; None when it is not queued any more."""
        moment = now()
        statement = (
            update(jobs_table)
            .where(jobs_table.c.id == job_id, jobs_table.c.status == "queued")
            .values(
                status="running",
                owner=owner,
                attempts=jobs_table.c.attempts + 1,
                started=moment,
                heartbeat=moment,
                progress=0.0,
            )
        )
        with self.engine.begin() as connection:
            if connection.execute(statement).rowcount != 1:
                return None
        return self.get(job_id)

    def report(self, job_id: str, owner: str, progress: float | None = None) -> bool:
        """Record that ``owner`` still runs the job; False when it no longer holds it."""
        values: dict[str, Any] = {"heartbeat": now()}
        if progress is not None:
            values["progress"] = min(max(progress, 0.0), 1.0)
        return self._update_held(job_id, owner, values)

    def finish(
        self,
        job_id: str,
        owner: str,
        *,
        result: dict[str, Any] | None,
        error: str | None = None,
    ) -> bool:
        """Mark a held job succeeded (no error) or failed; False when it is no longer held."""
        values: dict[str, Any] = {
            "status": "failed" if error is not None else "succeeded",
            "finished": now(),
            "result": result,
            "error": error,
        }
        if error is None:
            values["progress"] = 1.0
        return self._update_held(job_id, owner, values)

    def release(self, job_id: str, owner: str) -> bool:
        """Put a job ``owner`` was running back in the queue (its worker is gone)."""
        return self._update_held(job_id, owner, {"status": "queued", "owner": None})

    def queued_ids(self) -> list[str]:
        """Ids of every queued job, oldest first."""
        query = (
            select(jobs_table.c.id)
            .where(jobs_table.c.status == "queued")
            .order_by(jobs_table.c.created)
        )
        with self.engine.connect() as connection:
            return [row.id for row in connection.execute(query)]

    def running(self) -> list[tuple[str, str, datetime]]:
        """(id, owner, last heartbeat) of every running job."""
        query = select(jobs_table.c.id, jobs_table.c.owner, jobs_table.c.heartbeat).where(
            jobs_table.c.status == "running"
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [(row.id, row.owner or "", _utc(row.heartbeat) or now()) for row in rows]

    def stale_before(self, lease_seconds: float) -> datetime:
        """Heartbeats older than this mean the worker is presumed dead."""
        return now() - timedelta(seconds=lease_seconds)

    def _update_held(self, job_id: str, owner: str, values: dict[str, Any]) -> bool:
        statement = (
            update(jobs_table)
            .where(
                jobs_table.c.id == job_id,
                jobs_table.c.status == "running",
                jobs_table.c.owner == owner,
            )
            .values(**values)
        )
        with self.engine.begin() as connection:
            return bool(connection.execute(statement).rowcount == 1)
