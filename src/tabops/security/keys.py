"""API keys in the metadata database: only each token's hash and lookup prefix are kept."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    String,
    Table,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping

from tabops.database import metadata, stored_utc
from tabops.errors import InvalidRequestError, Problem, ResourceNotFoundError
from tabops.security.tokens import hash_token, new_token

READ = "read"
PREDICT = "predict"
ADMIN = "admin"
SCOPES = (READ, PREDICT, ADMIN)
"""Each scope includes the ones before it. ``read``: models, versions, cards, examples,
health detail, features; ``predict``: every predict route, scoring jobs; ``admin``:
training, keys, the audit log, every job."""

api_keys_table = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("models", JSON),
    Column("rate_per_second", Float),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True)),
    Column("revoked", DateTime(timezone=True)),
    Index("ix_api_keys_prefix", "prefix"),
)


@dataclass(frozen=True)
class ApiKey:
    """One key as stored (never the token itself).

    Attributes:
        models: the models the key may use; None for every model.
        rate_per_second: the key's own rate limit; None for the server's default.
    """

    id: str
    name: str
    prefix: str
    hash: str
    scope: str
    models: frozenset[str] | None
    rate_per_second: float | None
    created: datetime
    expires: datetime | None
    revoked: datetime | None

    @classmethod
    def from_row(cls, row: RowMapping) -> ApiKey:
        """The key of a database row."""
        created = stored_utc(row["created"])
        assert created is not None  # NOT NULL
        return cls(
            id=row["id"],
            name=row["name"],
            prefix=row["prefix"],
            hash=row["hash"],
            scope=row["scope"],
            models=None if row["models"] is None else frozenset(row["models"]),
            rate_per_second=row["rate_per_second"],
            created=created,
            expires=stored_utc(row["expires"]),
            revoked=stored_utc(row["revoked"]),
        )

    def status(self, now: datetime | None = None) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= (now or datetime.now(UTC)):
            return "expired"
        return "active"

    def describe(self) -> dict[str, Any]:
        """What may be shown of the key: everything but its hash."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scope": self.scope,
            "models": None if self.models is None else sorted(self.models),
            "rate_per_second": self.rate_per_second,
            "created": self.created,
            "expires": self.expires,
            "revoked": self.revoked,
            "status": self.status(),
        }


def check_key_request(
    name: str, scope: str, models: Sequence[str] | None, rate: float | None
) -> None:
    """Refuse a key that could not work, naming the field.

    Raises:
        InvalidRequestError: an empty name, an unknown scope, an empty model list, an
            admin key limited to models, or a rate that is not positive.
    """
    problems = []
    if not name.strip() or len(name) > 100:
        problems.append(Problem("name", "must be 1 to 100 characters"))
    if scope not in SCOPES:
        problems.append(Problem("scope", f"unknown scope {scope!r}; choose {', '.join(SCOPES)}"))
    if models is not None and not models:
        problems.append(Problem("models", "name at least one model, or leave it out for all"))
    if models and scope == ADMIN:
        # Training, keys and the audit log are not about one model: such a limit would
        # promise more than it could hold.
        problems.append(Problem("models", "an admin key cannot be limited to models"))
    if rate is not None and not rate > 0:
        problems.append(Problem("rate_per_second", "must be positive"))
    if problems:
        raise InvalidRequestError("the key cannot be created", problems)


class KeyStore:
    """The ``api_keys`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        name: str,
        scope: str,
        models: Sequence[str] | None = None,
        expires: datetime | None = None,
        rate_per_second: float | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its token; the token is shown now and never again.

        Raises:
            InvalidRequestError: as ``check_key_request``.
        """
        check_key_request(name, scope, models, rate_per_second)
        token, prefix = new_token()
        key_id = uuid.uuid4().hex[:16]
        row: dict[str, Any] = {
            "id": key_id,
            "name": name.strip(),
            "prefix": prefix,
            "hash": hash_token(token),
            "scope": scope,
            "models": None if models is None else sorted(set(models)),
            "rate_per_second": rate_per_second,
            "created": datetime.now(UTC),
            "expires": expires,
            "revoked": None,
        }
        with self.engine.begin() as connection:
            connection.execute(insert(api_keys_table).values(**row))
        return self.get(key_id), token

    def get(self, key_id: str) -> ApiKey:
        """The key with this id.

        Raises:
            ResourceNotFoundError: no key has that id.
        """
        with self.engine.connect() as connection:
            query = select(api_keys_table).where(api_keys_table.c.id == key_id)
            row = connection.execute(query).mappings().first()
        if row is None:
            raise ResourceNotFoundError(
                f"no API key {key_id!r}", [Problem("key_id", "no such key")]
            )
        return ApiKey.from_row(row)

    def all(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        query = select(api_keys_table).order_by(api_keys_table.c.created, api_keys_table.c.id)
        with self.engine.connect() as connection:
            return [ApiKey.from_row(row) for row in connection.execute(query).mappings()]

    def unrevoked(self) -> list[ApiKey]:
        """Every key not revoked (expired ones included: they still lock a server)."""
        query = select(api_keys_table).where(api_keys_table.c.revoked.is_(None))
        with self.engine.connect() as connection:
            return [ApiKey.from_row(row) for row in connection.execute(query).mappings()]

    def revoke(self, ref: str) -> ApiKey:
        """Revoke the key with this id or token prefix (revoking twice is harmless).

        Raises:
            ResourceNotFoundError: no key has that id or prefix.
            InvalidRequestError: the prefix is shared by several keys (use the id).
        """
        table = api_keys_table
        with self.engine.begin() as connection:
            query = select(table.c.id).where(or_(table.c.id == ref, table.c.prefix == ref))
            found = connection.execute(query).scalars().all()
            if not found:
                raise ResourceNotFoundError(
                    f"no API key {ref!r}", [Problem("key_id", "no key has this id or prefix")]
                )
            if len(found) > 1:
                raise InvalidRequestError(
                    f"several keys start with {ref!r}",
                    [Problem("key_id", "give the key's id")],
                )
            connection.execute(
                update(table)
                .where(table.c.id == found[0], table.c.revoked.is_(None))
                .values(revoked=datetime.now(UTC))
            )
        return self.get(found[0])
