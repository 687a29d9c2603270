"""Job records in the metadata database: the one source of truth about every job.

Each state change is a single conditional UPDATE, so two workers that were handed the same
job (a message re-queued after a crash) cannot both run it: only one ``claim`` matches a
queued row, and only the claim's holder (its ``worker``) can finish it. A job's ``owner`` is
who submitted it; callers that pass an owner see only that owner's jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.engine import RowMapping

from tabops.database import stored_utc
from tabops.jobs.table import is_job_id, job_not_found, jobs_table, upgrade_jobs_table

JobKind = Literal["score", "train"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed"})
_ID_BATCH = 500  # ids per IN (...) query, well under every backend's parameter limit


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
    worker: str | None = None
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
        owner: str | None = None,
    ) -> Job:
        """A queued job with a fresh id, submitted by ``owner`` (None: nobody in particular)."""
        return cls(
            id=uuid.uuid4().hex,
            kind=kind,
            status="queued",
            created=now(),
            model=model,
            version=version,
            input_format=input_format,
            params=params or {},
            owner=owner,
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
            values[name] = stored_utc(values[name])
        return cls(**values)


class JobStore:
    """Job records over SQLAlchemy Core: SQLite by default, PostgreSQL by URL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        upgrade_jobs_table(engine)

    def add(self, job: Job) -> None:
        """Store a new job."""
        values = {column.name: getattr(job, column.name) for column in jobs_table.columns}
        with self.engine.begin() as connection:
            connection.execute(insert(jobs_table).values(**values))

    def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job with this id; with ``owner``, only if that owner submitted it.

        Raises:
            JobNotFoundError: no job has that id (or it is another owner's).
        """
        if not is_job_id(job_id):
            raise job_not_found(job_id)
        query = select(jobs_table).where(jobs_table.c.id == job_id)
        if owner is not None:
            query = query.where(jobs_table.c.owner == owner)
        with self.engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            raise job_not_found(job_id)
        return Job._from_row(row)

    def recent(
        self, status: str | None = None, limit: int = 50, owner: str | None = None
    ) -> list[Job]:
        """The most recent jobs, newest first, optionally of one status or one owner."""
        query = select(jobs_table).order_by(jobs_table.c.created.desc()).limit(limit)
        if status is not None:
            query = query.where(jobs_table.c.status == status)
        if owner is not None:
            query = query.where(jobs_table.c.owner == owner)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [Job._from_row(row) for row in rows]

    def count(self, status: str) -> int:
        """How many jobs have this status."""
        query = select(func.count()).select_from(jobs_table).where(jobs_table.c.status == status)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def delete(self, job_id: str, statuses: Collection[str]) -> bool:
        """Delete a job's record if its status is one of ``statuses``; False when not."""
        statement = delete(jobs_table).where(
            jobs_table.c.id == job_id, jobs_table.c.status.in_(list(statuses))
        )
        with self.engine.begin() as connection:
            return bool(connection.execute(statement).rowcount == 1)

    def finished_before(self, moment: datetime) -> list[str]:
        """Ids of the finished jobs that ended before ``moment``, oldest first."""
        query = (
            select(jobs_table.c.id)
            .where(jobs_table.c.status.in_(FINISHED), jobs_table.c.finished < moment)
            .order_by(jobs_table.c.finished)
        )
        with self.engine.connect() as connection:
            return [row.id for row in connection.execute(query)]

    def statuses(self, job_ids: Iterable[str]) -> dict[str, str]:
        """The status of each of ``job_ids`` that has a record."""
        wanted = list(job_ids)
        found: dict[str, str] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), _ID_BATCH):
                batch = wanted[start : start + _ID_BATCH]
                query = select(jobs_table.c.id, jobs_table.c.status).where(
                    jobs_table.c.id.in_(batch)
                )
                found.update((row.id, row.status) for row in connection.execute(query))
        return found

    def claim(self, job_id: str, worker: str) -> Job | None:
        """Mark a queued job running for ``worker``; None when it is not queued any more."""
        moment = now()
        statement = (
            update(jobs_table)
            .where(jobs_table.c.id == job_id, jobs_table.c.status == "queued")
            .values(
                status="running",
                worker=worker,
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

    def report(self, job_id: str, worker: str, progress: float | None = None) -> bool:
        """Record that ``worker`` still runs the job; False when it no longer holds it."""
        values: dict[str, Any] = {"heartbeat": now()}
        if progress is not None:
            values["progress"] = min(max(progress, 0.0), 1.0)
        return self._update_held(job_id, worker, values)

    def finish(
        self,
        job_id: str,
        worker: str,
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
        return self._update_held(job_id, worker, values)

    def release(self, job_id: str, worker: str) -> bool:
        """Put a job ``worker`` was running back in the queue (its worker is gone)."""
        return self._update_held(job_id, worker, {"status": "queued", "worker": None})

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
        """(id, worker, last heartbeat) of every running job."""
        query = select(jobs_table.c.id, jobs_table.c.worker, jobs_table.c.heartbeat).where(
            jobs_table.c.status == "running"
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [(row.id, row.worker or "", stored_utc(row.heartbeat) or now()) for row in rows]

    def stale_before(self, lease_seconds: float) -> datetime:
        """Heartbeats older than this mean the worker is presumed dead."""
        return now() - timedelta(seconds=lease_seconds)

    def _update_held(self, job_id: str, worker: str, values: dict[str, Any]) -> bool:
        statement = (
            update(jobs_table)
            .where(
                jobs_table.c.id == job_id,
                jobs_table.c.status == "running",
                jobs_table.c.worker == worker,
            )
            .values(**values)
        )
        with self.engine.begin() as connection:
            return bool(connection.execute(statement).rowcount == 1)
