"""Signed webhook deliveries of alert events: one POST per event, retried with back-off.

Each request carries ``X-Tabops-Event`` (firing or resolved), ``X-Tabops-Delivery`` (the
delivery id, the same on every retry, for receivers to drop duplicates),
``X-Tabops-Timestamp`` (Unix seconds) and, with a secret, ``X-Tabops-Signature:
sha256=<hex>``: the HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with the secret, which a
receiver checks with ``verify_signature``. A 2xx answer delivers; anything else is retried
after 5 s, 10 s, 20 s ... (at most an hour apart) until 20 attempts or a day have passed.

Redirects are never followed (a 3xx is a failed attempt): the signed body goes only to the
configured host. Neither the secret nor the URL, which may hold a token, is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from tabops import __version__
from tabops.monitoring.alert_store import AlertStore, Delivery, utc_now

logger = logging.getLogger("tabops.alerts")

EVENT_HEADER = "X-Tabops-Event"
DELIVERY_HEADER = "X-Tabops-Delivery"
TIMESTAMP_HEADER = "X-Tabops-Timestamp"
SIGNATURE_HEADER = "X-Tabops-Signature"
FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 3600.0
MAX_ATTEMPTS = 20
GIVE_UP_AFTER = timedelta(hours=24)
DEFAULT_TIMEOUT_SECONDS = 10.0
# Enough of an answer to free the connection; receivers have nothing to tell us.
_MAX_ANSWER_BYTES = 64 * 1024


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for a body sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    max_age_seconds: float | None = 300.0,
    now: float | None = None,
) -> bool:
    """Whether a received webhook was signed with ``secret`` (for receivers, and tests).

    Args:
        secret: The shared secret.
        timestamp: The ``X-Tabops-Timestamp`` header.
        body: The request body, byte for byte.
        header: The ``X-Tabops-Signature`` header.
        max_age_seconds: Refuse a timestamp this far from ``now`` (a replayed request);
            None accepts any age.
        now: The current Unix time; the clock's when None.
    """
    if max_age_seconds is not None:
        try:
            sent = float(timestamp)
        except ValueError:
            return False
        if abs((time.time() if now is None else now) - sent) > max_age_seconds:
            return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt."""
    seconds = FIRST_RETRY_SECONDS * 2.0 ** min(max(attempts - 1, 0), 30)
    return timedelta(seconds=min(seconds, MAX_RETRY_SECONDS))


Outcome = Literal["delivered", "retrying", "failed"]


@dataclass
class DeliveryStats:
    """What one ``deliver_pending`` call did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        """Deliveries this call tried to send."""
        return self.delivered + self.retrying + self.failed

    def add(self, outcome: Outcome) -> None:
        """Count one attempt's outcome."""
        setattr(self, outcome, getattr(self, outcome) + 1)


class WebhookSender:
    """POSTs queued alert deliveries to one URL, signed with a shared secret."""

    def __init__(
        self, url: str, secret: str | None, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        """Send to ``url``; sign with ``secret`` (unsigned when None).

        Raises:
            ValueError: the URL is not http(s), names no host, or carries credentials
                (a receiver authenticates the signature, not a password in the URL).
        """
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 -- urlsplit checks the port only when it is read
        except ValueError as exc:
            raise ValueError("the webhook URL has an invalid port") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the webhook URL must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("the webhook URL must not carry credentials; use the secret")
        if timeout_seconds <= 0:
            raise ValueError("the webhook timeout must be positive")
        self._parts = parts
        self._secret = secret
        self.timeout_seconds = timeout_seconds

    def __repr__(self) -> str:
        return f"WebhookSender(host={self._parts.hostname!r})"

    def deliver_pending(
        self, store: AlertStore, now: datetime | None = None, limit: int = 100
    ) -> DeliveryStats:
        """Send every due pending delivery once; safe to call from several processes at once.

        Args:
            store: Where the deliveries are queued.
            now: The time deciding what is due and when to retry; the clock's when None.
            limit: Most deliveries sent by this call (the rest wait for the next).
        """
        moment = (now or utc_now()).astimezone(UTC)
        # Hidden from other senders while this one tries it, with room for a slow answer.
        lease_until = moment + timedelta(seconds=3 * self.timeout_seconds + 60)
        stats = DeliveryStats()
        for delivery in store.due_deliveries(moment, limit):
            if store.claim(delivery, moment, lease_until):
                stats.add(self._attempt(store, delivery, moment))
        return stats

    def _attempt(self, store: AlertStore, delivery: Delivery, moment: datetime) -> Outcome:
        """Send a claimed delivery and record how it went."""
        error = self.send(delivery)
        attempts = delivery.attempts + 1
        if error is None:
            store.finish_attempt(delivery.id, attempts, "delivered", now=moment)
            return "delivered"
        if attempts >= MAX_ATTEMPTS or moment - delivery.created_at >= GIVE_UP_AFTER:
            store.finish_attempt(delivery.id, attempts, "failed", now=moment, error=error)
            logger.error(
                "webhook delivery %s to %s given up after %d attempts: %s",
                delivery.id, self._parts.hostname, attempts, error,
            )  # fmt: skip
            return "failed"
        retry_at = moment + retry_delay(attempts)
        store.finish_attempt(
            delivery.id, attempts, "pending", now=moment, next_attempt_at=retry_at, error=error
        )
        logger.warning(
            "webhook delivery %s to %s failed (attempt %d, next at %s): %s",
            delivery.id, self._parts.hostname, attempts, retry_at.isoformat(), error,
        )  # fmt: skip
        return "retrying"

    def send(self, delivery: Delivery) -> str | None:
        """POST one delivery; None when it was delivered, else what went wrong."""
        body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"tabops/{__version__}",
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: delivery.id,
            TIMESTAMP_HEADER: timestamp,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        try:
            status = self._post(body, headers)
        except TimeoutError:
            return f"no answer within {self.timeout_seconds:g} s"
        except (OSError, http.client.HTTPException) as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return None
        if 300 <= status < 400:
            return f"HTTP {status}: a redirect, not followed"
        return f"HTTP {status}"

    def _post(self, body: bytes, headers: dict[str, str]) -> int:
        """The status of one POST to the configured URL (no redirect is followed)."""
        parts = self._parts
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "",
                parts.port,
                timeout=self.timeout_seconds,
                context=ssl.create_default_context(),
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=self.timeout_seconds
            )
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("POST", target, body=body, headers=headers)
            answer = connection.getresponse()
            answer.read(_MAX_ANSWER_BYTES)
            return answer.status
        finally:
            connection.close()
