"""The metadata database: one SQLAlchemy engine for SQLite (default) or PostgreSQL by URL.

On SQLite, the engine turns the two errors a caller can act on into tabops errors, whatever
table the statement used: a lock held by another writer past the busy timeout becomes
``DatabaseBusyError``, a full disk ``StorageFullError``. A reserve file beside the database
keeps room to record jobs' outcomes when the disk fills (``release_reserve``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from tabops import atomic
from tabops.config import Settings
from tabops.errors import DatabaseBusyError, DatabaseError, StorageFullError, TabopsError

logger = logging.getLogger("tabops.database")

metadata = MetaData()
"""Every table tabops keeps in the metadata database."""

DEFAULT_BUSY_TIMEOUT_SECONDS = 30.0
RESERVE_BYTES = 1024 * 1024
"""Room kept beside a SQLite database to record job outcomes on a full disk."""
RESERVE_CHUNK_BYTES = 16 * 1024
"""What one release frees: room for the few pages one transaction appends to the log."""

_STORE = "metadata database"
_RESERVE_SUFFIX = "-reserve"


def open_database(settings: Settings) -> Engine:
    """The engine of ``settings``' metadata database, waiting for locks as configured."""
    return create_database_engine(settings.metadata_url, settings.database.busy_timeout_seconds)


def create_database_engine(
    url: str, busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS
) -> Engine:
    """An engine for ``url`` with tabops' tables created (idempotent).

    SQLite runs in WAL mode so readers never wait for the job threads' writes, and a writer
    waits up to ``busy_timeout_seconds`` for another's lock instead of failing at once.

    Raises:
        DatabaseError: the URL is malformed, its driver is missing, or the database refuses.
        StorageFullError: the disk holding a SQLite database is full.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"TABOPS_DATABASE_URL is not a database URL: {exc}") from exc
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        options = {"connect_args": {"timeout": busy_timeout_seconds}}
    elif parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2
    try:
        engine = create_engine(parsed, **options)
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseError(
            f"no driver for {parsed.drivername}: install tabops[postgres] for PostgreSQL ({exc})"
        ) from exc
    if engine.dialect.name == "sqlite":
        _install_sqlite_handlers(engine, busy_timeout_seconds)
    try:
        metadata.create_all(engine)
    except TabopsError:
        engine.dispose()
        raise
    except Exception as exc:  # any driver error: the database is unreachable or refuses us
        engine.dispose()
        where = parsed.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot open the metadata database {where}: {exc}") from exc
    restore_reserve(engine)
    return engine


def sqlite_error(exc: BaseException, store: str, busy_timeout_seconds: float) -> TabopsError | None:
    """The tabops error a SQLite error stands for, if it is a lock or a full disk.

    Args:
        exc: What the sqlite3 module raised.
        store: What the database holds, for the message (``metadata database``).
        busy_timeout_seconds: How long the statement waited for the lock.
    """
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return DatabaseBusyError(
            f"the {store} stayed locked by another writer for {busy_timeout_seconds:g} s; "
            "retry shortly"
        )
    if code == sqlite3.SQLITE_FULL:
        return atomic.storage_full(store, "database or disk is full")
    return None


def reserve_path(engine: Engine) -> Path | None:
    """The reserve file of a SQLite database file; None for any other database."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database + _RESERVE_SUFFIX)


def restore_reserve(engine: Engine) -> None:
    """Bring the reserve back to its full size if it is short and the disk has room."""
    path = reserve_path(engine)
    if path is None:
        return
    try:
        if path.stat().st_size >= RESERVE_BYTES:
            return
    except FileNotFoundError:
        pass
    try:
        with atomic.reporting_full_disk(_STORE), path.open("ab") as stream:
            _allocate(stream.fileno())
    except (StorageFullError, OSError) as exc:  # a precaution, never a reason to fail
        logger.warning("could not set aside the metadata database's reserve: %s", exc)


def release_reserve(engine: Engine) -> bool:
    """Give one chunk of the reserve back to the disk; whether any was left to give.

    A chunk holds the few pages one transaction writes: the rest stays set aside, so a
    full disk stays full for every other writer.
    """
    path = reserve_path(engine)
    if path is None:
        return False
    try:
        size = path.stat().st_size
        if size == 0:
            return False
        os.truncate(path, max(size - RESERVE_CHUNK_BYTES, 0))
    except FileNotFoundError:
        return False
    logger.warning(
        "the disk holding the metadata database is full: %d bytes of its reserve released",
        min(size, RESERVE_CHUNK_BYTES),
    )
    return True


def _allocate(descriptor: int) -> None:
    if hasattr(os, "posix_fallocate"):
        # Allocated blocks, not written zeros, which a compressing file system would keep
        # in no space at all.
        os.posix_fallocate(descriptor, 0, RESERVE_BYTES)
    else:
        size = os.fstat(descriptor).st_size
        os.pwrite(descriptor, bytes(RESERVE_BYTES - size), size)
    os.fsync(descriptor)


def _install_sqlite_handlers(engine: Engine, busy_timeout_seconds: float) -> None:
    busy_ms = round(busy_timeout_seconds * 1000)

    def configure(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        # WAL with NORMAL loses no committed transaction when a process is killed, only on
        # power loss, and saves an fsync per commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def translate(context: ExceptionContext) -> BaseException | None:
        return sqlite_error(context.original_exception, _STORE, busy_timeout_seconds)

    event.listen(engine, "connect", configure)
    event.listen(engine, "handle_error", translate, retval=True)


@overload
def stored_utc(moment: datetime) -> datetime: ...
@overload
def stored_utc(moment: None) -> None: ...
def stored_utc(moment: datetime | None) -> datetime | None:
    """A timestamp read from the database, in UTC.

    Every stored time is UTC; SQLite hands timestamps back without a zone, PostgreSQL in
    the session's zone.
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
