"""Login sessions of the web UI, kept in the metadata database.

A session is started by an API key and stands for it: the browser holds only a random
session id, the database only that id's hash, the key's id and the session's CSRF token.
The key itself is never stored or sent back. A session ends on logout, when it expires, or
as soon as its key is revoked or expires (checked on every request by the access policy).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, DateTime, Engine, Index, String, Table, delete, insert, select

from tabops.database import metadata, stored_utc

SESSION_HOURS = 12.0
"""How long a session lasts unless the server says otherwise."""

ui_sessions_table = Table(
    "ui_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False),
    Index("ix_ui_sessions_expires", "expires"),
)


def hash_session_id(session_id: str) -> str:
    """The stored form of a session id (256 random bits: a fast hash is enough)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def new_secret() -> str:
    """A fresh random token of 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class UiSession:
    """One session as stored (never its id)."""

    key_id: str
    csrf: str
    created: datetime
    expires: datetime


class SessionStore:
    """The ``ui_sessions`` table.

    Args:
        engine: the metadata database.
        lifetime_seconds: how long a new session lasts.
    """

    def __init__(self, engine: Engine, lifetime_seconds: float = SESSION_HOURS * 3600) -> None:
        self.engine = engine
        self.lifetime_seconds = lifetime_seconds

    def start(self, key_id: str) -> tuple[str, UiSession]:
        """A new session for the key: its id (for the cookie, shown once) and its record.

        Sessions that have expired are removed on the way.
        """
        session_id = new_secret()
        now = datetime.now(UTC)
        session = UiSession(
            key_id, new_secret(), now, now + timedelta(seconds=self.lifetime_seconds)
        )
        with self.engine.begin() as connection:
            connection.execute(delete(ui_sessions_table).where(ui_sessions_table.c.expires <= now))
            connection.execute(
                insert(ui_sessions_table).values(
                    id_hash=hash_session_id(session_id),
                    key_id=session.key_id,
                    csrf=session.csrf,
                    created=session.created,
                    expires=session.expires,
                )
            )
        return session_id, session

    def find(self, session_id: str) -> UiSession | None:
        """The unexpired session with this id, else None."""
        table = ui_sessions_table
        query = select(table).where(table.c.id_hash == hash_session_id(session_id))
        with self.engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            return None
        created, expires = stored_utc(row["created"]), stored_utc(row["expires"])
        assert created is not None  # NOT NULL
        assert expires is not None  # NOT NULL
        if expires <= datetime.now(UTC):
            return None
        return UiSession(row["key_id"], row["csrf"], created, expires)

    def end(self, session_id: str) -> None:
        """Remove the session with this id (ending one twice is harmless)."""
        table = ui_sessions_table
        with self.engine.begin() as connection:
            connection.execute(delete(table).where(table.c.id_hash == hash_session_id(session_id)))
