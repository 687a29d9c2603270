"""The UI's cookies: their names and flags, and flash messages carried to the next page.

Every cookie is sent to ``/ui`` only, HttpOnly, SameSite=Strict, and Secure when the page
came over https.
"""

from __future__ import annotations

import base64
import binascii
import json

from fastapi import Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

SESSION_COOKIE = "tabops_session"
CSRF_COOKIE = "tabops_csrf"
"""The CSRF token of a browser without a session (login form, open server): double-submit."""
FLASH_COOKIE = "tabops_flash"
FLASH_KINDS = ("info", "ok", "warn", "alert")
_MAX_FLASHES = 5
_MAX_FLASH_CHARS = 300
_MAX_COOKIE_CHARS = 4096


def cookie_path(request: Request) -> str:
    """The path the UI's cookies are sent to (``/ui`` below any root path)."""
    return f"{request.scope.get('root_path', '')}/ui"


def set_ui_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None = None
) -> None:
    """Set a cookie only the UI's pages receive: HttpOnly, SameSite=Strict, Secure on https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=cookie_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def see_other(request: Request, path: str) -> RedirectResponse:
    """A 303 to ``path`` (under the root path) carrying the messages ``flash``ed on the request."""
    response = RedirectResponse(f"{request.scope.get('root_path', '')}{path}", status_code=303)
    for message, kind in getattr(request.state, "ui_flashes", []):
        flash(response, message, kind, request=request)
    return response


def flash(
    request_or_response: Request | Response,
    message: str,
    kind: str = "info",
    *,
    request: Request | None = None,
) -> None:
    """Show ``message`` on the next page.

    On a response (a redirect), it goes in a cookie the next page reads; on a request, it
    shows on the page the request renders, or the one ``see_other`` leads to. ``kind`` is
    one of ``FLASH_KINDS``; ``request`` (for a response) gives the cookie its Secure flag.
    """
    kind = kind if kind in FLASH_KINDS else "info"
    entry = (message[:_MAX_FLASH_CHARS], kind)
    if isinstance(request_or_response, Request):
        state = request_or_response.state
        state.ui_flashes = [*getattr(state, "ui_flashes", []), entry]
        return
    response = request_or_response
    pending: list[tuple[str, str]] = [*getattr(response, "ui_flashes", []), entry]
    pending = pending[-_MAX_FLASHES:]
    response.ui_flashes = pending  # type: ignore[attr-defined]  # kept for a second flash
    value = base64.urlsafe_b64encode(json.dumps(pending).encode()).decode()
    marker = f"{FLASH_COOKIE}=".encode()
    response.raw_headers = [
        (name, old)
        for name, old in response.raw_headers
        if not (name == b"set-cookie" and old.startswith(marker))
    ]
    path = cookie_path(request) if request is not None else "/ui"
    response.set_cookie(
        FLASH_COOKIE,
        value,
        path=path,
        secure=request is not None and request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def cookie_flashes(request: Request) -> list[tuple[str, str]]:
    """The messages the previous answer left in the flash cookie (nothing if it is garbled)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or len(raw) > _MAX_COOKIE_CHARS:
        return []
    try:
        entries = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (binascii.Error, ValueError):
        return []
    if not isinstance(entries, list):
        return []
    return [
        (str(entry[0])[:_MAX_FLASH_CHARS], entry[1] if entry[1] in FLASH_KINDS else "info")
        for entry in entries[:_MAX_FLASHES]
        if isinstance(entry, list) and len(entry) == 2
    ]
