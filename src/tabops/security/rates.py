"""Per-key rate limits: token buckets counted in this process, or in Redis for every process.

A bucket holds up to ``burst`` requests and refills at ``rate`` a second; a request takes
one. ``take`` answers how long to wait when the bucket is empty (0 when the request may go).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

logger = logging.getLogger("tabops.security")

_REDIS_PREFIX = "tabops:rate:"
# Refill and take in one atomic step on the server, timed by the server's clock so that
# hosts with skewed clocks share one bucket fairly.
_TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""
_WARN_EVERY_SECONDS = 60.0


class RateLimiter(Protocol):
    """Where buckets are counted."""

    def take(self, bucket: str, rate: float, burst: int) -> float:
        """Take one request from ``bucket``: 0 when it may go, else seconds to wait."""
        ...


class LocalRateLimiter:
    """Buckets in this process (each server process counts its own requests)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, bucket: str, rate: float, burst: int) -> float:
        """Take one request from ``bucket``: 0 when it may go, else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(bucket, (float(burst), now))
            tokens = min(float(burst), tokens + (now - at) * rate)
            if tokens >= 1:
                self._buckets[bucket] = (tokens - 1, now)
                return 0.0
            self._buckets[bucket] = (tokens, now)
            return (1 - tokens) / rate


class RedisRateLimiter:
    """Buckets in Redis, shared by every process and host that uses the same server.

    When Redis cannot be reached the request goes (logged at most once a minute): an
    outage of the limiter's store must not take the API down with it.
    """

    def __init__(self, url: str) -> None:
        import redis

        self._client: Any = redis.Redis.from_url(url, socket_timeout=1.0)
        self._script: Any = self._client.register_script(_TAKE_SCRIPT)
        self._warned_at = float("-inf")

    def take(self, bucket: str, rate: float, burst: int) -> float:
        """Take one request from ``bucket``: 0 when it may go, else seconds to wait."""
        import redis

        try:
            wait = self._script(keys=[_REDIS_PREFIX + bucket], args=[rate, burst])
        except redis.RedisError as exc:
            now = time.monotonic()
            if now - self._warned_at > _WARN_EVERY_SECONDS:
                self._warned_at = now
                logger.warning("rate limits not enforced: Redis is unreachable (%s)", exc)
            return 0.0
        return float(wait)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def open_rate_limiter(url: str | None) -> RateLimiter:
    """Redis buckets when ``url`` is a redis:// URL, else buckets in this process.

    Raises:
        ValueError: ``url`` is not a Redis URL.
    """
    if url is None:
        return LocalRateLimiter()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"TABOPS_RATE_LIMIT_URL must be a redis:// URL, not {url!r}")
    return RedisRateLimiter(url)
