"""Who asked for a prediction, through which route, under which request id."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import time

from tabops.security.access import Caller

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class _Ids:
    """Ids unique across processes: a random prefix per process, then a counter.

    Drawing 16 random bytes per request cost more than scoring a row; a counter behind a
    random 48-bit prefix is as unique (forked children draw their own prefix).
    """

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.counter = itertools.count()

    def new(self) -> str:
        """24 hex digits: the process's prefix and the next number."""
        return f"{self.prefix}{next(self.counter):012x}"


_IDS = _Ids()
os.register_at_fork(after_in_child=_IDS.reseed)


new_id = _IDS.new
"""A fresh id of 24 hex digits, unique across processes and threads."""


def accepted_request_id(offered: str | None) -> str | None:
    """The caller's request id when it is safe to echo and log, else None."""
    if offered and _REQUEST_ID.match(offered):
        return offered
    return None


class RequestContext:
    """What the core knows of a request besides its body.

    Args:
        route: which way in (``predict``, ``predict_batch``, ``entity``, ``job``, ``file``).
        request_id: the caller's ``X-Request-ID`` when it sent a safe one; a fresh id is
            made on first use otherwise.
        credential: the API key the request carries, if any.
        client: the peer address, for audit.

    ``caller`` is set by the ``authorize`` hook once it has let the request through;
    ``entity_id`` by predictions made from an entity's stored features. ``started`` is the
    ``time.perf_counter()`` of the request's start (the prediction log's latency).
    ``served`` is the model and version that decided, once one has (for request metrics).
    """

    __slots__ = (
        "_request_id",
        "caller",
        "client",
        "credential",
        "entity_id",
        "route",
        "served",
        "started",
    )

    def __init__(
        self,
        route: str,
        request_id: str | None = None,
        credential: str | None = None,
        client: str | None = None,
    ) -> None:
        self.route = route
        self._request_id = request_id
        self.credential = credential
        self.client = client
        self.caller: Caller | None = None
        self.entity_id: str | None = None
        self.served: tuple[str, int] | None = None
        self.started = time.perf_counter()

    @property
    def request_id(self) -> str:
        """The request's id, made now if the caller sent none."""
        if self._request_id is None:
            self._request_id = new_id()
        return self._request_id

    @property
    def has_offered_id(self) -> bool:
        """Whether the id came from the caller (then answers echo it)."""
        return self._request_id is not None

    def __repr__(self) -> str:
        return f"RequestContext(route={self.route!r}, request_id={self.request_id!r})"
