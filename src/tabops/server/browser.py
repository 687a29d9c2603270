"""What web browsers get from the API: CORS, security headers, no cross-site posts, offline docs.

- CORS is off unless ``security.cors_origins`` lists origins; then exactly those may call
  the API from a page's script, without cookies (the API authenticates with headers).
- Every answer says ``X-Content-Type-Options: nosniff``. HTML answers (the model card,
  ``/docs``, ``/redoc``) also carry a Content-Security-Policy, ``Referrer-Policy:
  no-referrer`` and ``X-Frame-Options: DENY``.
- An HTML form on any site can post to a server on 127.0.0.1 without a CORS preflight, so a
  state-changing request whose ``Origin`` is neither this server nor an allowed origin is
  refused (403 ``origin_not_allowed``). Requests without ``Origin`` (curl, Python clients)
  pass: browsers send it on every POST.
- ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from the fastapi-offline package, not
  from a CDN as FastAPI's own pages do.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Collection, Iterable
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tabops.errors import OriginNotAllowedError, Problem
from tabops.server.errors import error_answer

NOSNIFF = (b"x-content-type-options", b"nosniff")
"""The header every answer carries, the fast path's included."""

# The model card is one self-contained page: inline CSS and data: images, no script.
CARD_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Swagger UI: its bundle and CSS from here, one inline start-up script (allowed by its hash),
# the OpenAPI document and "Try it out" requests to this server.
_SWAGGER_POLICY = (
    "default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
# ReDoc injects its styles at run time and searches in a worker it builds from a blob.
_REDOC_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_HTML_HEADERS = {"referrer-policy": "no-referrer", "x-frame-options": "DENY"}
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ORIGIN = b"origin"
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_ASSETS = "/docs/assets"
_MAX_ECHOED = 200  # characters of a refused Origin quoted back

CORS_METHODS = ("GET", "POST", "PUT", "DELETE")
CORS_HEADERS = ("Authorization", "X-API-Key", "Content-Type", "X-Request-ID")
CORS_EXPOSED = ("X-Request-ID", "Retry-After", "Location")


def install_browser_defaults(app: FastAPI, cors_origins: Iterable[str]) -> None:
    """CORS (when origins are given), security headers, the origin check and offline docs.

    The app must be built with ``docs_url=None`` and ``redoc_url=None``: these pages replace
    FastAPI's. Raises ``ValueError`` for an entry of ``cors_origins`` that is not an origin.
    """
    origins = [normalize_origin(origin) for origin in cors_origins]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=False,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            max_age=600,
        )
    # Added last, so outermost: its headers reach CORS preflight answers too.
    app.add_middleware(BrowserGuard, allowed_origins=origins)
    _install_docs(app)


def normalize_origin(origin: str) -> str:
    """An origin as browsers send it (``scheme://host[:port]``, lower case), or ``*``.

    Raises:
        ValueError: not an origin (no scheme or host, or a path, query or fragment).
    """
    text = origin.strip().rstrip("/")
    if text == "*":
        return text
    parts = urlsplit(text)
    if not parts.scheme or not parts.netloc or parts.path or parts.query or parts.fragment:
        raise ValueError(
            f"security.cors_origins: {origin!r} is not an origin; write scheme://host[:port]"
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_browser_request(scope: Scope) -> bool:
    """Whether a request carries ``Origin``: a browser's, which the middleware must see."""
    # On every fast-path request: a plain loop costs half what any() over a generator does.
    for key, _value in scope.get("headers", ()):  # noqa: SIM110
        if key == _ORIGIN:
            return True
    return False


def is_allowed_origin(origin: str, host: str | None, allowed: Collection[str]) -> bool:
    """Whether a request's ``Origin`` is this server's own (its ``Host``) or an allowed one.

    Only host and port are compared with ``Host``: behind a proxy that ends TLS the request
    arrives as http while the page was https. ``null`` (sandboxed frames, local files) is
    no one's origin.
    """
    origin = origin.strip().lower()
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    if host is None or not parts.netloc:
        return False
    own = _without_default_port(host.strip().lower())
    return _without_default_port(parts.netloc, parts.scheme) == own


def _without_default_port(netloc: str, scheme: str | None = None) -> str:
    schemes = [scheme] if scheme else list(_DEFAULT_PORTS)
    for name in schemes:
        suffix = f":{_DEFAULT_PORTS.get(name, '')}"
        if suffix != ":" and netloc.endswith(suffix):
            return netloc.removesuffix(suffix)
    return netloc


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


class BrowserGuard:
    """ASGI middleware: security headers on every answer, cross-site posts refused."""

    def __init__(self, app: ASGIApp, allowed_origins: Collection[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a cross-site state-changing request, else answer with the headers added."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                _add_security_headers(MutableHeaders(scope=message))
            await send(message)

        if scope["method"] in _STATE_CHANGING:
            origin = _header(scope, _ORIGIN)
            if origin is not None and not is_allowed_origin(
                origin, _header(scope, b"host"), self.allowed
            ):
                await _refuse(origin, send_with_headers, scope["path"])
                return
        await self.app(scope, receive, send_with_headers)


def _add_security_headers(headers: MutableHeaders) -> None:
    headers.setdefault("x-content-type-options", "nosniff")
    if headers.get("content-type", "").startswith("text/html"):
        headers.setdefault("content-security-policy", CARD_POLICY)
        for name, value in _HTML_HEADERS.items():
            headers.setdefault(name, value)


async def _refuse(origin: str, send: Send, path: str) -> None:
    shown = origin if len(origin) <= _MAX_ECHOED else origin[:_MAX_ECHOED] + "..."
    error = OriginNotAllowedError(
        "a web page of another site may not send this request",
        [
            Problem(
                "Origin",
                f"{shown!r} is neither this server nor an origin listed in security.cors_origins",
            )
        ],
    )
    status, body, extra = error_answer(error, path)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers.extend((key.lower().encode(), value.encode()) for key, value in extra.items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _install_docs(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` on assets shipped in the fastapi-offline package."""
    assets = files("fastapi_offline") / "static"
    app.mount(_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    parameters = {**(app.swagger_ui_parameters or {}), "validatorUrl": None}

    @app.get("/docs", include_in_schema=False)
    async def swagger_docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{_ASSETS}/favicon.png",
            swagger_ui_parameters=parameters,
        )
        policy = _SWAGGER_POLICY.format(hashes=" ".join(script_hashes(bytes(page.body))))
        page.headers["content-security-policy"] = policy
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc_docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["content-security-policy"] = _REDOC_POLICY
        return page


def script_hashes(page: bytes) -> list[str]:
    """CSP sources (``'sha256-...'``) allowing exactly the inline scripts of a page."""
    found: list[Any] = _INLINE_SCRIPT.findall(page.decode())
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in found
    ]
