"""``AccessPolicy``: who is calling (authentication), and whether it may (scopes, models, rate).

The policy is the serving core's ``authorize`` hook: the fast path, every framework route
and every job ask it. Keys are held in memory and re-read every ``refresh_seconds`` (at most
``STALE_FACTOR`` times that apart), so a check costs a hash and a dict lookup, and a key
created or revoked on one process takes effect on every process within that bound.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from tabops.config import Settings
from tabops.errors import (
    DatabaseError,
    NotAuthenticatedError,
    NotAuthorizedError,
    RateLimitedError,
    TabopsError,
)
from tabops.security.audit import AuditEntry, AuditLog
from tabops.security.keys import ADMIN, PREDICT, READ, SCOPES, ApiKey, KeyStore
from tabops.security.rates import RateLimiter, open_rate_limiter
from tabops.security.tokens import hash_token, token_prefix

logger = logging.getLogger("tabops.security")

AuthState = Literal["off", "open", "keys"]
"""``off``: no checks at all; ``open``: no key exists yet and anonymous callers are let in;
``keys``: every caller needs a key."""

_LEVEL = {READ: 1, PREDICT: 2, ADMIN: 3}
STALE_FACTOR = 3
"""Keys older than this many refresh periods are re-read before a request is checked."""
_MISSING = "this server needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key'"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request comes from: a key, or anonymous where the server lets anonymous in."""

    key_id: str | None
    name: str
    scope: str
    models: frozenset[str] | None = None
    rate_per_second: float | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the caller may do everything (and see every caller's jobs)."""
        return self.scope == ADMIN

    def may_use(self, model: str) -> bool:
        """Whether the caller's key is not limited to other models."""
        return self.models is None or model in self.models

    @classmethod
    def of_key(cls, key: ApiKey) -> Caller:
        """The caller holding ``key``."""
        return cls(key.id, key.name, key.scope, key.models, key.rate_per_second)


ANONYMOUS = Caller(None, "anonymous", ADMIN)
"""The caller without a key, where the server lets one in (no key yet, or auth off)."""


class Credentials(Protocol):
    """What the policy reads of a request and writes back (``RequestContext`` is one)."""

    credential: str | None
    caller: Caller | None
    route: str
    client: str | None

    @property
    def request_id(self) -> str:
        """The request's id, for the audit log."""
        ...


@dataclass(frozen=True)
class _Keys:
    """The unrevoked keys by lookup prefix, as last read, each with its caller made once."""

    by_prefix: dict[str, tuple[tuple[ApiKey, Caller, float | None], ...]]
    read_at: float

    @classmethod
    def of(cls, keys: list[ApiKey]) -> _Keys:
        by_prefix: dict[str, tuple[tuple[ApiKey, Caller, float | None], ...]] = {}
        for key in keys:
            expires = key.expires.timestamp() if key.expires is not None else None
            entry = (key, Caller.of_key(key), expires)
            by_prefix[key.prefix] = (*by_prefix.get(key.prefix, ()), entry)
        return cls(by_prefix, time.monotonic())


class AccessPolicy:
    """Authenticates a request's key and checks its scope, models and rate.

    Args:
        keys: where keys are kept (None with ``enabled`` False).
        enabled: False lets every caller do everything (``TABOPS_AUTH=off``).
        open_while_no_keys: let anonymous callers in while no unrevoked key exists (a
            server on loopback, or one started ``--insecure``).
        limiter: where rate limits are counted.
        default_rate: requests a second for keys without their own rate; None: no limit.
        burst: requests a key may send at once; twice its rate when None.
        audit: where refusals are recorded.
        refresh_seconds: how long the keys read from the database are trusted.
    """

    def __init__(
        self,
        keys: KeyStore | None,
        *,
        enabled: bool = True,
        open_while_no_keys: bool = False,
        limiter: RateLimiter | None = None,
        default_rate: float | None = None,
        burst: int | None = None,
        audit: AuditLog | None = None,
        refresh_seconds: float = 1.0,
    ) -> None:
        if enabled and keys is None:
            raise ValueError("an enabled access policy needs a key store")
        self.keys = keys
        self.enabled = enabled
        self.open_while_no_keys = open_while_no_keys
        self.limiter = limiter
        self.default_rate = default_rate
        self.burst = burst
        self.audit = audit
        self.refresh_seconds = refresh_seconds
        self._known: _Keys | None = None
        self._reading = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, keys: KeyStore, audit: AuditLog) -> AccessPolicy:
        """The policy ``settings`` ask for, over ``keys``, recording refusals in ``audit``.

        Anonymous callers are let in while no key exists only on a loopback address, or
        anywhere when ``security.insecure`` is set.
        """
        security = settings.security
        return cls(
            keys,
            enabled=security.auth == "on",
            open_while_no_keys=security.insecure or is_loopback(settings.serving.host),
            limiter=open_rate_limiter(security.rate_limit_url),
            default_rate=security.rate_limit_per_second,
            burst=security.rate_limit_burst,
            audit=audit,
        )

    def __call__(self, context: Credentials, action: str, model: str | None) -> None:
        """Let the request through, recording its caller on ``context``, or refuse it.

        Raises:
            NotAuthenticatedError: no key, or one that is unknown, revoked or expired.
            NotAuthorizedError: the key's scope or models do not cover the request.
            RateLimitedError: the key has sent more requests than its rate allows.
            DatabaseError: the keys could never be read.
        """
        # A request asked twice (a route's dependency, then the core) is authenticated
        # and charged to its key's rate once; its scope is checked for each action.
        caller = context.caller
        try:
            first = caller is None
            if caller is None:
                caller = self.authenticate(context.credential)
            self.check(caller, action, model, charge=first)
        except (NotAuthenticatedError, NotAuthorizedError, RateLimitedError) as exc:
            self._record_refusal(context, model, exc, caller)
            raise
        context.caller = caller

    def authenticate(self, credential: str | None) -> Caller:
        """The caller a credential stands for.

        Raises:
            NotAuthenticatedError: no key where one is needed, or an unknown, revoked or
                expired key.
        """
        if not self.enabled:
            return ANONYMOUS
        known = self._current()
        if credential is None:
            if self.open_while_no_keys and not known.by_prefix:
                return ANONYMOUS
            raise NotAuthenticatedError(_MISSING)
        prefix = token_prefix(credential)
        if prefix is not None:
            digest = hash_token(credential)
            for key, caller, expires in known.by_prefix.get(prefix, ()):
                if hmac.compare_digest(key.hash, digest):
                    if expires is not None and expires <= time.time():
                        raise NotAuthenticatedError(f"the API key {key.prefix} has expired")
                    return caller
        # One answer for malformed, unknown and revoked keys: it tells a guesser nothing.
        raise NotAuthenticatedError("the API key is not valid")

    def caller_of(self, key_id: str) -> Caller | None:
        """The caller of the key with this id while it is unrevoked and unexpired, else None.

        Read from the current keys, as ``authenticate`` does (a UI session stands for a key).
        """
        for entries in self._current().by_prefix.values():
            for key, caller, expires in entries:
                if key.id == key_id:
                    return None if expires is not None and expires <= time.time() else caller
        return None

    def check(self, caller: Caller, action: str, model: str | None, *, charge: bool = True) -> None:
        """Refuse what the caller's scope, models or rate do not allow.

        ``charge`` False checks the scope and models only (the request was charged).

        Raises:
            NotAuthorizedError: the scope is below the action's, or the key is limited to
                other models.
            RateLimitedError: the caller's bucket is empty.
        """
        needed = _LEVEL.get(action)
        if needed is None:
            raise ValueError(f"unknown action {action!r}; choose from {', '.join(SCOPES)}")
        if _LEVEL[caller.scope] < needed:
            raise NotAuthorizedError(
                f"the key {caller.name!r} has scope {caller.scope!r}; this needs {action!r}"
            )
        if model is not None and not caller.may_use(model):
            raise NotAuthorizedError(f"the key {caller.name!r} may not use model {model!r}")
        rate = caller.rate_per_second or self.default_rate
        if charge and rate is not None and self.limiter is not None and caller.key_id:
            burst = self.burst or max(1, math.ceil(2 * rate))
            wait = self.limiter.take(caller.key_id, rate, burst)
            if wait > 0:
                raise RateLimitedError(
                    f"the key {caller.name!r} may send {rate:g} requests a second", wait
                )

    def state(self) -> AuthState:
        """Whether checks are off, open to anonymous callers (no key yet), or need keys."""
        if not self.enabled:
            return "off"
        try:
            known = self._current()
        except DatabaseError:
            return "keys"
        return "open" if self.open_while_no_keys and not known.by_prefix else "keys"

    def forget(self) -> None:
        """Read the keys again on the next request (after this process changed them)."""
        self._known = None

    def _current(self) -> _Keys:
        """The keys, never older than ``STALE_FACTOR`` times ``refresh_seconds``.

        Under steady traffic the keys are re-read on a thread once they are
        ``refresh_seconds`` old, while requests go on with them: a slow database must not
        stall the event loop every second. Keys older than the bound (a server idle for a
        while), the first read, a read after ``forget``, and every read when
        ``refresh_seconds`` is 0 happen on the caller's thread: a key revoked while the
        server was idle must not let one more request through.
        """
        known = self._known
        age = time.monotonic() - known.read_at if known is not None else None
        if age is None or age >= STALE_FACTOR * self.refresh_seconds:
            with self._reading:
                current = self._known
                if current is not None and current is not known:
                    return current  # read by another thread while this one waited
                return self._read(known)
        assert known is not None  # age is None only without keys known
        if age >= self.refresh_seconds and self._reading.acquire(blocking=False):
            threading.Thread(target=self._read_in_background, name="tabops-keys").start()
        return known

    def _read_in_background(self) -> None:
        try:
            self._read(self._known)
        except DatabaseError:
            pass  # logged by _read; the keys read before stay in use
        finally:
            self._reading.release()

    def _read(self, known: _Keys | None) -> _Keys:
        """Read the keys; on failure keep ``known`` (logged), or raise when there is none."""
        try:
            assert self.keys is not None
            self._known = _Keys.of(self.keys.unrevoked())
        except Exception as exc:  # a database outage: keep the keys known so far
            if known is None:
                raise DatabaseError(f"cannot read the API keys: {exc}") from exc
            logger.warning("could not re-read the API keys; using those read before: %s", exc)
            self._known = replace(known, read_at=time.monotonic())
        return self._known

    def _record_refusal(
        self, context: Credentials, model: str | None, exc: TabopsError, caller: Caller | None
    ) -> None:
        if self.audit is None:
            return
        if isinstance(exc, NotAuthenticatedError):
            status, outcome = 401, "not_authenticated"
        elif isinstance(exc, RateLimitedError):
            status, outcome = 429, "rate_limited"
        else:
            status, outcome = 403, "not_authorized"
        self.audit.record_later(audit_entry(context, model, outcome, status, caller))


def audit_entry(
    context: Credentials,
    target: str | None,
    outcome: str,
    status: int,
    caller: Caller | None = None,
) -> AuditEntry:
    """The audit entry of a request: its route, client and id, and its caller's key.

    ``caller`` defaults to the one the policy recorded on ``context``.
    """
    caller = caller or context.caller
    return AuditEntry(
        action=context.route,
        outcome=outcome,
        status=status,
        target=target,
        key_id=caller.key_id if caller else None,
        key_name=caller.name if caller else None,
        client=context.client,
        request_id=context.request_id,
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[] ")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to anything
        return False


def describe_state(state: AuthState) -> str:
    """A sentence saying who may call a server in ``state``."""
    if state == "off":
        return "authentication is off (TABOPS_AUTH=off): every caller may do everything"
    if state == "open":
        return (
            "no API key exists yet, so anonymous callers may do everything; "
            "create one with `tabops keys create NAME --scope admin` to require keys"
        )
    return "every request needs an API key (healthz and readyz excepted)"
