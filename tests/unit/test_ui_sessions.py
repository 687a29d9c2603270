"""UI login sessions in the metadata database, and the key a session stands for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tabops.database import create_database_engine
from tabops.security.access import AccessPolicy
from tabops.security.keys import KeyStore
from tabops.server.ui.sessions import SessionStore, hash_session_id, ui_sessions_table


@pytest.fixture
def engine(tmp_path):
    return create_database_engine(f"sqlite:///{tmp_path / 'meta.db'}")


def test_a_session_is_found_by_its_id_and_only_its_hash_is_stored(engine):
    sessions = SessionStore(engine)
    session_id, session = sessions.start("key1")
    assert len(session_id) >= 43  # 256 random bits
    assert session.expires - session.created == timedelta(hours=12)
    found = sessions.find(session_id)
    assert found is not None
    assert (found.key_id, found.csrf) == ("key1", session.csrf)
    assert sessions.find(session_id + "x") is None
    with engine.connect() as connection:
        rows = connection.execute(select(ui_sessions_table)).mappings().all()
    assert [row["id_hash"] for row in rows] == [hash_session_id(session_id)]
    assert session_id not in str(dict(rows[0]))


def test_two_sessions_of_one_key_are_distinct_and_end_one_at_a_time(engine):
    sessions = SessionStore(engine)
    first, one = sessions.start("key1")
    second, two = sessions.start("key1")
    assert first != second
    assert one.csrf != two.csrf
    sessions.end(first)
    sessions.end(first)  # twice is harmless
    assert sessions.find(first) is None
    assert sessions.find(second) is not None


def test_an_expired_session_is_not_found_and_is_cleared_by_the_next_start(engine):
    sessions = SessionStore(engine, lifetime_seconds=0)
    old, _session = sessions.start("key1")
    assert sessions.find(old) is None
    SessionStore(engine).start("key2")
    with engine.connect() as connection:
        keys = connection.execute(select(ui_sessions_table.c.key_id)).scalars().all()
    assert keys == ["key2"]


def test_the_policy_names_the_caller_of_a_live_key_only(engine):
    keys = KeyStore(engine)
    reader, _token = keys.create("reader", "read", models=["a"])
    revoked, _token = keys.create("old", "admin")
    keys.revoke(revoked.id)
    expired, _token = keys.create("late", "read", expires=datetime.now(UTC) - timedelta(1))
    policy = AccessPolicy(keys, refresh_seconds=0)
    caller = policy.caller_of(reader.id)
    assert caller is not None
    assert (caller.name, caller.scope, caller.models) == ("reader", "read", frozenset({"a"}))
    assert policy.caller_of(revoked.id) is None
    assert policy.caller_of(expired.id) is None
    assert policy.caller_of("nobody") is None
