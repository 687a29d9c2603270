"""The online store in the metadata database (SQLite or PostgreSQL), over SQLAlchemy Core.

A write loads the view's row digests in one query and upserts only the rows whose digest
changed, all in one transaction. A write whose feature list differs from the stored one
replaces the view: every stored row of it is deleted first, so no entity is ever served with
features the view no longer has, or without ones it now has.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from tabops.config import Settings
from tabops.database import metadata, open_database, stored_utc
from tabops.errors import DatabaseError, DataError
from tabops.feature_store.base import MaterializeReport, OnlineRow, ViewSummary, prepare_rows

_UPSERT_BATCH_ROWS = 5_000
_LOOKUP_BATCH_IDS = 1_000
_MAX_VIEW_NAME = 200

online_features_table = Table(
    "online_features",
    metadata,
    Column("view", String(_MAX_VIEW_NAME), primary_key=True),
    Column("entity_id", Text, primary_key=True),
    Column("feature_values", Text, nullable=False),
    Column("digest", String(32), nullable=False),
    Column("event_time", DateTime(timezone=True)),
    Column("materialized_at", DateTime(timezone=True), nullable=False),
)

feature_views_table = Table(
    "feature_views",
    metadata,
    Column("view", String(_MAX_VIEW_NAME), primary_key=True),
    Column("entity", String(200), nullable=False),
    Column("features", JSON, nullable=False),
    Column("entities", Integer, nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
)

_INSERTS: dict[str, Callable[..., Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}

_row_columns = online_features_table.c
_GET = select(
    _row_columns.entity_id,
    _row_columns.feature_values,
    _row_columns.event_time,
    _row_columns.materialized_at,
).where(_row_columns.view == bindparam("view"))
_GET_ONE = _GET.where(_row_columns.entity_id == bindparam("entity_id"))
_GET_MANY = _GET.where(_row_columns.entity_id.in_(bindparam("entity_ids", expanding=True)))


_SQLITE_GET = (
    "SELECT feature_values, event_time, materialized_at FROM online_features "
    "WHERE view = ? AND entity_id = ?"
)


def _parse_sqlite_time(text: str) -> datetime:
    """A timestamp as SQLAlchemy writes it to SQLite (naive UTC text), made aware."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class SqlFeatureStore:
    """The online store over SQLAlchemy Core: SQLite by default, PostgreSQL by URL."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine``'s database, creating the store's two tables if they are missing.

        Raises:
            DatabaseError: the engine's database is neither SQLite nor PostgreSQL.
        """
        if engine.dialect.name not in _INSERTS:
            raise DatabaseError(f"the online store runs on SQLite or PostgreSQL, not {engine.name}")
        self.engine = engine
        # A lookup is one SELECT: in autocommit it needs no BEGIN and no ROLLBACK, two of the
        # four round trips a PostgreSQL get makes otherwise. SQLite has no round trips, and
        # switching its mode each checkout costs 20 us, a quarter of a lookup.
        self._lookup_engine = engine
        if engine.dialect.name == "postgresql":
            self._lookup_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._insert = _INSERTS[engine.dialect.name]
        metadata.create_all(engine, tables=[online_features_table, feature_views_table])
        # SQLite lookups skip the pool: one read-only connection per thread answers a
        # primary-key SELECT in about 10 us, where a pool checkout with its ping costs 60.
        self._sqlite_path = engine.url.database if engine.dialect.name == "sqlite" else None
        self._readers = threading.local()

    @property
    def is_local(self) -> bool:
        """Whether a lookup is in-process (SQLite), cheap enough for an event loop."""
        return self._sqlite_path is not None

    def close(self) -> None:
        """Close the engine's pooled connections and this thread's SQLite reader."""
        reader = getattr(self._readers, "connection", None)
        if reader is not None:
            reader.close()
            self._readers.connection = None
        self.engine.dispose()

    def write(
        self, view: str, table: pd.DataFrame, entity: str, event_time: str | None = None
    ) -> MaterializeReport:
        """Store one row per entity of ``table`` in ``view``, writing only changed rows.

        Args:
            view: the feature view's name.
            table: one row per entity; every column but ``entity`` and ``event_time`` is a
                feature.
            entity: the column of entity ids.
            event_time: the column of event times, if any.

        Returns:
            How many entities were inserted, updated or left unchanged.

        Raises:
            DataError: the view name is empty or too long, or the table does not fit (see
                ``prepare_rows``).
        """
        started = time.perf_counter()
        if not view or len(view) > _MAX_VIEW_NAME:
            raise DataError(f"a view name has 1 to {_MAX_VIEW_NAME} characters: {view!r}")
        features, rows = prepare_rows(table, entity, event_time)
        moment = datetime.now(UTC)
        report = MaterializeReport(view, len(rows), 0, 0, 0, 0.0)
        with self.engine.begin() as connection:
            self._lock_view(connection, view)
            stored = self._stored_digests(connection, view, features)
            if stored is None:
                report.removed = self._delete_rows(connection, view)
                stored = {}
            changed = []
            for row in rows:
                old = stored.get(row.entity_id)
                if old == row.digest:
                    report.unchanged += 1
                    continue
                if old is None:
                    report.inserted += 1
                else:
                    report.updated += 1
                changed.append(
                    {
                        "view": view,
                        "entity_id": row.entity_id,
                        "feature_values": row.values_json.decode(),
                        "digest": row.digest,
                        "event_time": row.event_time,
                        "materialized_at": moment,
                    }
                )
            self._upsert_rows(connection, changed)
            # Exact: the view is locked and its digests were read in this transaction.
            entities = len(stored) + report.inserted
            self._save_view(connection, view, entity, features, entities, moment)
        report.seconds = time.perf_counter() - started
        return report

    def get(self, view: str, entity_id: str) -> OnlineRow | None:
        """The entity's row, or None when the view does not hold it."""
        if self._sqlite_path:
            return self._get_from_sqlite(self._sqlite_path, view, entity_id)
        with self._lookup_engine.connect() as connection:
            row = connection.execute(_GET_ONE, {"view": view, "entity_id": entity_id}).first()
        return None if row is None else _online_row(view, row)

    def _get_from_sqlite(self, path: str, view: str, entity_id: str) -> OnlineRow | None:
        reader: sqlite3.Connection | None = getattr(self._readers, "connection", None)
        if reader is None:
            reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            reader.execute("PRAGMA query_only = ON")
            self._readers.connection = reader
        found = reader.execute(_SQLITE_GET, (view, entity_id)).fetchone()
        if found is None:
            return None
        values, event_time, materialized_at = found
        return OnlineRow(
            view=view,
            entity_id=entity_id,
            values=orjson.loads(values),
            event_time=None if event_time is None else _parse_sqlite_time(event_time),
            materialized_at=_parse_sqlite_time(materialized_at),
        )

    def get_many(self, view: str, entity_ids: Sequence[str]) -> dict[str, OnlineRow]:
        """The rows the view holds among ``entity_ids``, by id; unknown ids are left out."""
        wanted = list(dict.fromkeys(entity_ids))
        found: dict[str, OnlineRow] = {}
        with self.engine.connect() as connection:
            for batch in _batches(wanted, _LOOKUP_BATCH_IDS):
                parameters = {"view": view, "entity_ids": batch}
                for row in connection.execute(_GET_MANY, parameters):
                    found[row.entity_id] = _online_row(view, row)
        return found

    def views(self) -> list[ViewSummary]:
        """Every view, by name."""
        return self._summaries(None)

    def view(self, name: str) -> ViewSummary | None:
        """One view, or None when nothing was written to it."""
        summaries = self._summaries(name)
        return summaries[0] if summaries else None

    def _lock_view(self, connection: Connection, view: str) -> None:
        """Make concurrent writes of one view take turns, so each diffs against the last."""
        if self.engine.dialect.name == "sqlite":
            # pysqlite would BEGIN only at the first write, after the digests were read.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            lock = func.pg_advisory_xact_lock(func.hashtext(f"tabops.feature_store:{view}"))
            connection.execute(select(lock))

    def _stored_digests(
        self, connection: Connection, view: str, features: list[str]
    ) -> dict[str, str] | None:
        """The view's digests by entity id; None when its stored feature list differs."""
        views = feature_views_table.c
        query = select(views.features).where(views.view == view)
        stored_features = connection.execute(query).scalar_one_or_none()
        if stored_features is not None and list(stored_features) != features:
            return None
        query = select(_row_columns.entity_id, _row_columns.digest).where(_row_columns.view == view)
        return dict(connection.execute(query).all())

    def _delete_rows(self, connection: Connection, view: str) -> int:
        statement = delete(online_features_table).where(_row_columns.view == view)
        return int(connection.execute(statement).rowcount)

    def _upsert_rows(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        statement = self._insert(online_features_table)
        statement = statement.on_conflict_do_update(
            index_elements=[_row_columns.view, _row_columns.entity_id],
            set_={
                name: statement.excluded[name]
                for name in ("feature_values", "digest", "event_time", "materialized_at")
            },
        )
        for batch in _batches(rows, _UPSERT_BATCH_ROWS):
            connection.execute(statement, batch)

    def _save_view(
        self,
        connection: Connection,
        view: str,
        entity: str,
        features: list[str],
        entities: int,
        moment: datetime,
    ) -> None:
        values = {"entity": entity, "features": features, "entities": entities, "updated": moment}
        statement = self._insert(feature_views_table).values(view=view, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[feature_views_table.c.view], set_=values
        )
        connection.execute(statement)

    def _summaries(self, name: str | None) -> list[ViewSummary]:
        query = select(feature_views_table).order_by(feature_views_table.c.view)
        if name is not None:
            query = query.where(feature_views_table.c.view == name)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            ViewSummary(
                view=row.view,
                entity=row.entity,
                features=list(row.features),
                entities=row.entities,
                updated=stored_utc(row.updated),
            )
            for row in rows
        ]


def _online_row(view: str, row: Row[Any, Any, Any, Any]) -> OnlineRow:
    return OnlineRow(
        view=view,
        entity_id=row.entity_id,
        values=orjson.loads(row.feature_values),
        event_time=None if row.event_time is None else stored_utc(row.event_time),
        materialized_at=stored_utc(row.materialized_at),
    )


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def open_feature_store(settings: Settings, engine: Engine | None = None) -> SqlFeatureStore:
    """The online store in the metadata database of ``settings`` (SQLite or PostgreSQL).

    ``engine``, when given, is an engine already open on that database, shared so that one
    process keeps one connection pool.

    Raises:
        DatabaseError: the database cannot be opened.
    """
    return SqlFeatureStore(engine or open_database(settings))
