"""The metadata database: one SQLAlchemy engine for SQLite (default) or PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from tabops.errors import DatabaseError

metadata = MetaData()
"""Every table tabops keeps in the metadata database."""

_SQLITE_BUSY_MS = 30_000


def create_database_engine(url: str) -> Engine:
    """An engine for ``url`` with tabops' tables created (idempotent).

    SQLite runs in WAL mode so readers never wait for the job threads' writes, and waits up
    to 30 s for a lock instead of failing at once when processes write together.

    Raises:
        DatabaseError: the URL is malformed, its driver is missing, or the database refuses.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"TABOPS_DATABASE_URL is not a database URL: {exc}") from exc
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        options = {"connect_args": {"timeout": _SQLITE_BUSY_MS / 1000}}
    elif parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2
    try:
        engine = create_engine(parsed, **options)
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseError(
            f"no driver for {parsed.drivername}: install tabops[postgres] for PostgreSQL ({exc})"
        ) from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _configure_sqlite)
    try:
        metadata.create_all(engine)
    except Exception as exc:  # any driver error: the database is unreachable or refuses us
        engine.dispose()
        where = parsed.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot open the metadata database {where}: {exc}") from exc
    return engine


def _configure_sqlite(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
    # WAL with NORMAL loses no committed transaction when a process is killed, only on
    # power loss, and saves an fsync per commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
