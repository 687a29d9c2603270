"""API key tokens: how they are made, recognised and hashed, and key lifetimes parsed."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

TOKEN_PREFIX = "tabops_"
_PREFIX_BYTES = 4  # 8 hex digits, stored in clear to find the key
_SECRET_BYTES = 32  # 256 random bits
_TOKEN = re.compile(r"tabops_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")
_TOKEN_LENGTH = len(TOKEN_PREFIX) + 2 * _PREFIX_BYTES + 1 + 43
_LIFETIME = re.compile(r"(\d+)\s*([mhdw])")
_UNIT_SECONDS = {"m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def new_token() -> tuple[str, str]:
    """A fresh token and its lookup prefix: ``tabops_<8 hex>_<43 base64url characters>``."""
    prefix = secrets.token_hex(_PREFIX_BYTES)
    return f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}", prefix


def token_prefix(token: str) -> str | None:
    """The lookup prefix of a well-formed token, else None."""
    if len(token) != _TOKEN_LENGTH or not token.startswith(TOKEN_PREFIX):
        return None  # the common refusals, without the pattern
    found = _TOKEN.fullmatch(token)
    return found.group(1) if found else None


def hash_token(token: str) -> str:
    """The stored form of a token.

    A token carries 256 random bits, so a fast hash cannot be brute-forced and a slow
    password hash would only cost every request time.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """When a key given ``text`` (``90m``, ``12h``, ``30d``, ``2w`` or an ISO date) expires.

    Raises:
        ValueError: the text is neither a lifetime nor a future date.
    """
    now = now or datetime.now(UTC)
    found = _LIFETIME.fullmatch(text.strip().lower())
    if found:
        amount = int(found.group(1))
        if amount <= 0:
            raise ValueError("a key's lifetime must be positive")
        return now + timedelta(seconds=amount * _UNIT_SECONDS[found.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a lifetime (90m, 12h, 30d, 2w) nor an ISO date"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment <= now:
        raise ValueError(f"{text!r} is in the past")
    return moment
