"""Alert states and their queued deliveries in the metadata database (SQLite or PostgreSQL).

Each alert (model, version, rule, feature) is ``ok`` or ``firing``. A change of state is a
compare-and-set on its row, and its delivery is queued in the same transaction: of two
processes that see the same change, one records it and queues one delivery, the other
finds the state already changed and queues nothing. An alert is so sent once when it fires
and once when it resolves, never while it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
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
    and_,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from tabops.database import metadata, stored_utc
from tabops.errors import DatabaseError
from tabops.monitoring.alerts import AlertEvent, RuleCheck

DeliveryStatus = Literal["pending", "delivered", "failed", "logged"]

alert_states_table = Table(
    "alert_states",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("rule_key", String(200), primary_key=True),
    Column("feature", Text, primary_key=True),  # "" for rules on the whole model
    Column("state", String(8), nullable=False),
    Column("value", Float),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("checked_at", DateTime(timezone=True), nullable=False),
)

alert_deliveries_table = Table(
    "alert_deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("event", String(16), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),
    Column("last_error", Text),
    Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
)

_INSERTS: dict[str, Callable[..., Any]] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
_states = alert_states_table.c
_deliveries = alert_deliveries_table.c


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class AlertState:
    """The stored state of one alert."""

    model: str
    version: int
    rule: str
    feature: str | None
    state: Literal["ok", "firing"]
    value: float | None
    changed_at: datetime
    checked_at: datetime


def alert_document(state: AlertState) -> dict[str, Any]:
    """An alert state as JSON-ready values (times as ISO text)."""
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in asdict(state).items()
    }


@dataclass(frozen=True)
class Delivery:
    """One queued announcement of an event and how its sending went."""

    id: str
    model: str
    event: Literal["firing", "resolved"]
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    status: DeliveryStatus
    last_error: str | None

    @classmethod
    def from_row(cls, row: RowMapping) -> Delivery:
        """A delivery as read from its table."""
        return cls(
            id=row["id"],
            model=row["model"],
            event=row["event"],
            payload=row["payload"],
            attempts=row["attempts"],
            created_at=stored_utc(row["created_at"]),
            next_attempt_at=stored_utc(row["next_attempt_at"]),
            delivered_at=stored_utc(row["delivered_at"]),
            status=row["status"],
            last_error=row["last_error"],
        )


class AlertStore:
    """Alert states and deliveries in the metadata database."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine``'s database, creating the two tables if they are missing.

        Raises:
            DatabaseError: the database is neither SQLite nor PostgreSQL.
        """
        if engine.dialect.name not in _INSERTS:
            raise DatabaseError(f"alerts are kept in SQLite or PostgreSQL, not {engine.name}")
        self.engine = engine
        self._insert = _INSERTS[engine.dialect.name]
        metadata.create_all(engine, tables=[alert_states_table, alert_deliveries_table])

    def apply(
        self,
        model: str,
        version: int,
        checks: Iterable[RuleCheck],
        *,
        now: datetime | None = None,
        is_sent: bool = True,
    ) -> list[AlertEvent]:
        """Record checks of one version; the events of the states that changed.

        One transaction updates the states and queues one delivery per event: ``pending``
        when ``is_sent`` (a webhook will send it), else ``logged`` (kept as a record only).
        Checks without enough data change nothing.
        """
        moment = (now or utc_now()).astimezone(UTC)
        decided = [check for check in checks if check.is_breached is not None]
        # The same row order in every process: two PostgreSQL transactions locking the same
        # rows in different orders would deadlock.
        decided.sort(key=lambda check: (check.rule_key, check.feature or ""))
        events: list[AlertEvent] = []
        with self.engine.begin() as connection:
            for check in decided:
                event = self._record(connection, model, version, check, moment)
                if event is None:
                    continue
                events.append(event)
                connection.execute(
                    insert(alert_deliveries_table).values(
                        id=event.delivery_id,
                        model=model,
                        event=event.event,
                        payload=event.payload(),
                        attempts=0,
                        created_at=moment,
                        next_attempt_at=moment,
                        status="pending" if is_sent else "logged",
                    )
                )
        return events

    def _record(
        self, connection: Connection, model: str, version: int, check: RuleCheck, moment: datetime
    ) -> AlertEvent | None:
        """Store one check's state; the event when it changed (in this transaction only)."""
        state = "firing" if check.is_breached else "ok"
        where = and_(
            _states.model == model,
            _states.version == version,
            _states.rule_key == check.rule_key,
            _states.feature == (check.feature or ""),
        )
        read = select(_states.state, _states.changed_at).where(where).with_for_update()
        row = connection.execute(read).first()
        if row is None:
            added = connection.execute(
                self._insert(alert_states_table)
                .values(
                    model=model,
                    version=version,
                    rule_key=check.rule_key,
                    feature=check.feature or "",
                    state=state,
                    value=check.value,
                    changed_at=moment,
                    checked_at=moment,
                )
                .on_conflict_do_nothing()
                .returning(_states.state)  # rowcount is -1 here on psycopg: the row says it
            ).first()
            if added is not None:
                is_new_alert = state == "firing"
                return (
                    AlertEvent.of(check, model, version, moment, moment) if is_new_alert else None
                )
            row = connection.execute(read).one()  # another checker added it first
        if row.state != state:
            changed = connection.execute(
                update(alert_states_table)
                .where(where, _states.state == row.state)
                .values(state=state, value=check.value, changed_at=moment, checked_at=moment)
            )
            if changed.rowcount == 1:
                fired_at = moment if state == "firing" else stored_utc(row.changed_at)
                return AlertEvent.of(check, model, version, moment, fired_at)
        connection.execute(
            update(alert_states_table).where(where).values(value=check.value, checked_at=moment)
        )
        return None

    def states(self, model: str) -> list[AlertState]:
        """The stored alerts of a model, firing first."""
        query = (
            select(alert_states_table)
            .where(_states.model == model)
            .order_by(_states.state, _states.version, _states.rule_key, _states.feature)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            AlertState(
                model=row["model"],
                version=row["version"],
                rule=row["rule_key"],
                feature=row["feature"] or None,
                state=row["state"],
                value=row["value"],
                changed_at=stored_utc(row["changed_at"]),
                checked_at=stored_utc(row["checked_at"]),
            )
            for row in rows
        ]

    def deliveries(self, model: str | None = None, limit: int = 100) -> list[Delivery]:
        """The latest deliveries, newest first (of one model, or of all)."""
        query = select(alert_deliveries_table).order_by(_deliveries.created_at.desc())
        if model is not None:
            query = query.where(_deliveries.model == model)
        with self.engine.connect() as connection:
            rows = connection.execute(query.limit(limit)).mappings().all()
        return [Delivery.from_row(row) for row in rows]

    def due_deliveries(self, now: datetime, limit: int) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, oldest due first."""
        query = (
            select(alert_deliveries_table)
            .where(
                _deliveries.status == "pending",
                _deliveries.next_attempt_at <= now.astimezone(UTC),
            )
            .order_by(_deliveries.next_attempt_at)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [Delivery.from_row(row) for row in rows]

    def claim(self, delivery: Delivery, now: datetime, lease_until: datetime) -> bool:
        """Take a due delivery for one attempt; False when another process took it first.

        The attempt is counted and the delivery hidden until ``lease_until`` before it is
        sent, so a process that dies while sending leaves it to be sent again later.
        """
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(alert_deliveries_table)
                .where(
                    _deliveries.id == delivery.id,
                    _deliveries.status == "pending",
                    _deliveries.attempts == delivery.attempts,
                    _deliveries.next_attempt_at <= now.astimezone(UTC),
                )
                .values(attempts=delivery.attempts + 1, next_attempt_at=lease_until.astimezone(UTC))
            )
        return taken.rowcount == 1

    def finish_attempt(
        self,
        delivery_id: str,
        attempt: int,
        status: DeliveryStatus,
        *,
        now: datetime,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> None:
        """Record how claimed attempt number ``attempt`` went: delivered, failed, or to retry.

        Nothing changes when a later attempt has begun since (this one outlived its lease).
        """
        values: dict[str, Any] = {"status": status, "last_error": error}
        if status == "delivered":
            values["delivered_at"] = now.astimezone(UTC)
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at.astimezone(UTC)
        with self.engine.begin() as connection:
            connection.execute(
                update(alert_deliveries_table)
                .where(_deliveries.id == delivery_id, _deliveries.attempts == attempt)
                .values(**values)
            )
