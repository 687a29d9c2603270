"""Who asked for a prediction, through which route, under which request id."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id() -> str:
    """A fresh random request id (32 hex digits)."""
    return secrets.token_hex(16)


def accepted_request_id(offered: str | None) -> str:
    """The caller's request id when it is safe to echo and log, else a fresh one."""
    if offered and _REQUEST_ID.match(offered):
        return offered
    return new_request_id()


@dataclass(frozen=True)
class RequestContext:
    """What the core knows of a request besides its body.

    Args:
        route: which way in (``predict``, ``predict_batch``, ``entity``, ``job``, ``file``).
        request_id: the caller's ``X-Request-ID`` when it sent a safe one, else random.
        caller: the authenticated identity; None while no authentication is configured.
        client: the peer address, for audit.
    """

    route: str
    request_id: str = field(default_factory=new_request_id)
    caller: str | None = None
    client: str | None = None
