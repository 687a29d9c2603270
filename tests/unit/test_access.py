"""Tokens, lifetimes, rate buckets and the access policy, without a server."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from conftest import REDIS_URL
from tabops.database import create_database_engine
from tabops.errors import NotAuthenticatedError, NotAuthorizedError, RateLimitedError
from tabops.security.access import STALE_FACTOR, AccessPolicy, is_loopback
from tabops.security.keys import KeyStore
from tabops.security.rates import LocalRateLimiter, RedisRateLimiter
from tabops.security.tokens import hash_token, new_token, parse_expiry, token_prefix


class Context:
    """The fields of a request the policy reads and writes."""

    def __init__(self, credential: str | None) -> None:
        self.credential = credential
        self.caller = None
        self.route = "predict"
        self.client = None
        self.request_id = "r1"


def test_tokens_carry_their_prefix_and_256_random_bits():
    token, prefix = new_token()
    assert token_prefix(token) == prefix
    assert len(token.removeprefix(f"tabops_{prefix}_")) == 43  # 32 bytes in base64url
    assert new_token()[0] != token
    assert hash_token(token) != hash_token(new_token()[0])
    for malformed in ("", "tabops_", f"{token}\n", token.upper(), f"x{token}"):
        assert token_prefix(malformed) is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("90m", 5_400), ("12h", 43_200), ("30d", 2_592_000), ("2w", 1_209_600)]
)
def test_lifetimes_are_read_in_minutes_hours_days_and_weeks(text, seconds):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_expiry(text, now) == now + timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0d", "soon", "2001-01-01", "-3d", "5y"])
def test_a_lifetime_that_is_not_in_the_future_is_refused(text):
    with pytest.raises(ValueError, match=r"."):
        parse_expiry(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),  # a value, never bound
        ("::", False),
        ("192.168.1.5", False),
        ("myhost", False),
    ],
)
def test_only_loopback_addresses_count_as_this_machine(host, loopback):
    assert is_loopback(host) is loopback


def test_a_local_bucket_lets_a_burst_through_then_says_how_long_to_wait():
    limiter = LocalRateLimiter()
    assert [limiter.take("k", 1.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("k", 1.0, 3)
    assert 0 < wait <= 1.0
    assert limiter.take("other", 1.0, 3) == 0.0


def test_a_redis_bucket_is_shared_by_every_limiter_on_the_server():
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    bucket = new_token()[1]
    first, second = RedisRateLimiter(REDIS_URL), RedisRateLimiter(REDIS_URL)
    assert first.take(bucket, 0.01, 2) == 0.0
    assert second.take(bucket, 0.01, 2) == 0.0
    assert first.take(bucket, 0.01, 2) > 90
    first.close()
    second.close()


def test_an_unreachable_redis_lets_requests_through():
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    assert limiter.take("k", 0.001, 1) == 0.0
    assert limiter.take("k", 0.001, 1) == 0.0


@pytest.fixture
def keys(tmp_path) -> KeyStore:
    return KeyStore(create_database_engine(f"sqlite:///{tmp_path / 'keys.db'}"))


def test_the_policy_names_who_called_and_checks_scope_models_and_rate(keys):
    _key, token = keys.create("partner", "predict", models=["a"], rate_per_second=0.01)
    policy = AccessPolicy(keys, limiter=LocalRateLimiter())
    context = Context(token)
    policy(context, "read", None)
    assert context.caller is not None
    assert context.caller.name == "partner"
    policy(context, "predict", "a")  # the same request: charged once
    with pytest.raises(NotAuthorizedError, match="may not use model 'b'"):
        policy(Context(token), "predict", "b")
    with pytest.raises(NotAuthorizedError, match="needs 'admin'"):
        policy(Context(token), "admin", None)
    with pytest.raises(RateLimitedError) as limited:
        policy(Context(token), "predict", "a")
    assert limited.value.retry_after > 90


def test_a_revoked_key_stops_working_once_the_keys_are_read_again(keys):
    key, token = keys.create("old", "read")
    policy = AccessPolicy(keys, refresh_seconds=3_600)
    policy(Context(token), "read", None)
    keys.revoke(key.id)
    policy(Context(token), "read", None)  # still the keys read an hour ago
    policy.forget()
    with pytest.raises(NotAuthenticatedError):
        policy(Context(token), "read", None)


def test_without_keys_the_policy_is_open_only_where_it_is_told(keys):
    assert AccessPolicy(keys, open_while_no_keys=True).state() == "open"
    assert AccessPolicy(keys).state() == "keys"
    with pytest.raises(NotAuthenticatedError):
        AccessPolicy(keys)(Context(None), "read", None)
    assert AccessPolicy(None, enabled=False).state() == "off"


def test_an_idle_server_reads_the_keys_before_it_checks_a_request(keys):
    key, token = keys.create("old", "read")
    policy = AccessPolicy(keys, refresh_seconds=0.05)
    policy(Context(token), "read", None)
    keys.revoke(key.id)
    time.sleep(0.05 * STALE_FACTOR + 0.05)  # idle for longer than the keys may be trusted
    with pytest.raises(NotAuthenticatedError):
        policy(Context(token), "read", None)


def test_the_first_key_ends_anonymous_access_on_an_idle_open_server(keys):
    policy = AccessPolicy(keys, open_while_no_keys=True, refresh_seconds=0.05)
    policy(Context(None), "read", None)
    keys.create("ops", "admin")
    time.sleep(0.05 * STALE_FACTOR + 0.05)
    with pytest.raises(NotAuthenticatedError):
        policy(Context(None), "read", None)
