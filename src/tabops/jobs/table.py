"""The jobs table of the metadata database, the form of a job id, and the table's upgrade."""

from __future__ import annotations

import re

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
    inspect,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError

from tabops.database import metadata
from tabops.errors import JobNotFoundError

JOB_ID = re.compile(r"[0-9a-f]{32}")
"""Every job id: what ``Job.new`` makes (a UUID4 in hex)."""
_SHOWN_ID_CHARS = 64

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
    Column("owner", String(200)),  # who submitted the job
    Column("worker", String(200)),  # the process holding the job's claim while it runs
    Column("created", DateTime(timezone=True), nullable=False),
    Column("started", DateTime(timezone=True)),
    Column("finished", DateTime(timezone=True)),
    Column("heartbeat", DateTime(timezone=True)),
    Column("result", JSON),
    Column("error", Text),
    Index("ix_jobs_status", "status"),
    Index("ix_jobs_owner", "owner"),
)


def is_job_id(text: str) -> bool:
    """Whether ``text`` has the form of a job id (and so is safe in a path or a query)."""
    return JOB_ID.fullmatch(text) is not None


def job_not_found(job_id: str) -> JobNotFoundError:
    """The error for an id that names no job the caller may see."""
    shown = job_id if len(job_id) <= _SHOWN_ID_CHARS else job_id[:_SHOWN_ID_CHARS] + "..."
    return JobNotFoundError(f"no job with id {shown!r}")


def upgrade_jobs_table(engine: Engine) -> None:
    """Bring a jobs table made before jobs had owners up to date (idempotent).

    Such a table kept the worker holding a job in ``owner``; that value moves to ``worker``
    in the same transaction that adds the column, so only one process ever moves it.
    """
    if _has_worker_column(engine):
        return
    try:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE jobs ADD COLUMN worker VARCHAR(200)"))
            connection.execute(update(jobs_table).values(worker=jobs_table.c.owner, owner=None))
            connection.execute(text("CREATE INDEX IF NOT EXISTS ix_jobs_owner ON jobs (owner)"))
    except DBAPIError:
        if not _has_worker_column(engine):  # else another process added it first
            raise


def _has_worker_column(engine: Engine) -> bool:
    return "worker" in {column["name"] for column in inspect(engine).get_columns("jobs")}
