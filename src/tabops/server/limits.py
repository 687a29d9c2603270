"""What one request may cost: the size and depth of its body, and its time to an answer.

Size. A JSON body (any request but an upload) may hold ``max_body_bytes``: a larger
``Content-Length`` is refused before any of the body is read, a body without one as soon as
what has arrived passes the limit (413 ``body_too_large``), before FastAPI parses anything
(so pydantic routes answer 413 too, not 400). Uploads, the file and form bodies of
``POST /v1/models/{name}/jobs``, are refused here by their ``Content-Length`` beyond
``max_upload_bytes``, then counted as the route streams them to disk (``server/uploads.py``).
An answer started before the body has all arrived closes the connection.

Depth. A body whose arrays and objects nest deeper than ``max_json_depth`` is refused (422,
field ``body``) before it is parsed: the JSON parsers recurse, and a body nested a thousand
levels deep ended in a RecursionError (500). The wrapper measures every body it reads. The
fast path measures a body only when it refuses it: one it answers went through a typed
decoder or a validator that take flat records (three levels at most), and measuring every
batch would cost a pass over it.

Time. A request whose answer has not started ``request_timeout_seconds`` after the last
piece of its body arrived is answered 503 ``request_timeout`` (with ``Retry-After``): the
clock starts again with each piece, so it measures the server's own time (or a client
stalling that long), and a slow upload of a large file is not cut off. The 503 is sent from
a task of its own and the route cancelled; a route waiting on a worker thread goes on in
the background (a thread cannot be stopped), and what it sends later is dropped. Every
request FastAPI answers is timed, and on the fast path batches and predictions by entity,
whose work grows with the batch or waits on the feature store; single records are not: one
is scored in microseconds, and a timer would cost the fast path several percent of its time.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tabops.config import Settings
from tabops.errors import (
    BodyTooLargeError,
    InvalidRequestError,
    Problem,
    RequestTimeoutError,
    TabopsError,
)
from tabops.server.browser import NOSNIFF
from tabops.server.codecs.v2_binary import json_part
from tabops.server.errors import error_answer
from tabops.server.uploads import is_upload, upload_too_large

T = TypeVar("T")

_CONTENT_LENGTH = b"content-length"
_CLOSE = (b"connection", b"close")
_NOT_MARKS = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_ESCAPED = re.compile(rb"\\.", re.DOTALL)
_QUOTE = ord('"')
_STEPS = np.zeros(256, dtype=np.int8)
_STEPS[[ord("["), ord("{")]] = 1
_STEPS[[ord("]"), ord("}")]] = -1
_SCAN_MARKS = 1 << 20  # brackets and quotes measured at a time: a few MB of working memory


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The size, depth and time limits of one app, as an ASGI wrapper and for the fast path."""

    max_body_bytes: int
    max_json_depth: int
    max_upload_bytes: int
    timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        """The limits ``settings`` set."""
        security = settings.security
        return cls(
            security.max_body_bytes,
            security.max_json_depth,
            settings.queue.max_upload_bytes,
            security.request_timeout_seconds,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        """Run ``app`` on an HTTP request within the limits; other scopes pass through."""
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        deadline = Deadline(receive, send, self.timeout_seconds, scope["path"])
        await deadline.run(self._answer(scope, deadline, app))

    async def _answer(self, scope: Scope, deadline: Deadline, app: ASGIApp) -> None:
        if is_upload(scope):
            declared = declared_length(scope)
            if declared is not None and declared > self.max_upload_bytes:
                await send_error(
                    deadline.send, upload_too_large(self.max_upload_bytes), path=scope["path"]
                )
            else:  # the route streams the body to disk
                await app(scope, deadline.receive, deadline.send)
            return
        try:
            body = await read_body(scope, deadline.receive, self.max_body_bytes)
        except BodyTooLargeError as exc:
            await send_error(deadline.send, exc, path=scope["path"])
            return
        if body is None:  # the client left
            return
        if self.is_too_deep(json_part(scope.get("headers", ()), body)):
            await send_error(deadline.send, self.depth_error(), path=scope["path"])
            return
        deadline.replay = body
        await app(scope, deadline.receive, deadline.send)

    def is_too_deep(self, body: bytes) -> bool:
        """Whether a JSON body nests arrays and objects deeper than the limit."""
        limit = self.max_json_depth
        # A body cannot nest deeper than it has opening brackets: most bodies stop here.
        return body.count(b"[") + body.count(b"{") > limit and json_depth(body) > limit

    def depth_error(self) -> InvalidRequestError:
        """The error answering a body nested too deep."""
        limit = self.max_json_depth
        return InvalidRequestError(
            f"the request body nests arrays and objects more than {limit} levels deep",
            [Problem("body", f"at most {limit} levels of nested arrays and objects")],
        )


class Deadline:
    """One request's clock: a 503 ``request_timeout`` when its answer has not started in time.

    The clock starts with ``run`` and again with each piece of body ``receive`` passes on
    (after ``replay``, a body already read, if set). The app sends through ``send``, which
    notes when the answer starts, closes the connection when it starts before the body has
    all arrived, and drops what the app sends once the timeout has answered.
    """

    def __init__(self, receive: Receive, send: Send, seconds: float, path: str = "") -> None:
        self.seconds = seconds
        self.path = path
        self.replay: bytes | None = None
        self.is_body_read = False
        self._receive = receive
        self._send = send
        self._is_started = self._has_expired = False
        self._last = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._scope = anyio.CancelScope()
        self._timeout_answer: asyncio.Task[None] | None = None

    async def run(self, answer: Coroutine[Any, Any, None]) -> None:
        """Await ``answer``; cancel it and answer 503 when the clock runs out first."""
        loop = self._loop = asyncio.get_running_loop()
        self._last = loop.time()
        self._timer = loop.call_at(self._last + self.seconds, self._check)
        try:
            with self._scope:
                await answer
        finally:
            self._timer.cancel()
            if self._timeout_answer is not None:
                await self._timeout_answer

    async def receive(self) -> Message:
        """The request's next message, restarting the clock and noting the body's end."""
        if self.replay is not None:
            body, self.replay = self.replay, None
            return {"type": "http.request", "body": body, "more_body": False}
        message = await self._receive()
        if self._loop is not None:
            self._last = self._loop.time()
        if not message.get("more_body", False):
            self.is_body_read = True
        return message

    async def send(self, message: Message) -> None:
        """Send an ASGI message of the app's answer (nothing once the timeout has answered)."""
        if self._has_expired:
            return
        if message["type"] == "http.response.start":
            self._is_started = True
            if not self.is_body_read:
                message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
        await self._send(message)

    def _check(self) -> None:
        if self._is_started or self._loop is None:
            return
        remaining = self._last + self.seconds - self._loop.time()
        if remaining > 0:  # a piece of body came meanwhile
            self._timer = self._loop.call_later(remaining, self._check)
            return
        self._has_expired = True
        self._timeout_answer = self._loop.create_task(self._answer_timeout())
        self._scope.cancel()

    async def _answer_timeout(self) -> None:
        error = timeout_error(self.seconds)
        await send_error(self._send, error, close=not self.is_body_read, path=self.path)


async def answer_within(seconds: float, answer: Awaitable[T]) -> T:
    """What ``answer`` gives, unless it takes longer than ``seconds`` (then cancelled).

    Raises:
        RequestTimeoutError: ``answer`` did not finish in time.
    """
    with anyio.move_on_after(seconds):
        return await answer
    raise timeout_error(seconds)


async def read_body(scope: Scope, receive: Receive, max_bytes: int) -> bytes | None:
    """A request's whole body, or None when the client left before sending it.

    Raises:
        BodyTooLargeError: the ``Content-Length``, or the bytes received, pass ``max_bytes``.
    """
    for key, value in scope.get("headers", ()):
        if key == _CONTENT_LENGTH:
            try:
                declared = int(value)
            except ValueError:  # a server checks it; an ASGI caller may not
                break
            if declared > max_bytes:
                raise body_too_large(max_bytes)
            break
    message = await receive()
    body: bytes = message.get("body", b"")
    if len(body) > max_bytes:
        raise body_too_large(max_bytes)
    if not message.get("more_body", False):  # the whole body in one message, or a disconnect
        return None if message["type"] == "http.disconnect" else body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise body_too_large(max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, when it sends a valid one."""
    for key, value in scope.get("headers", ()):
        if key == _CONTENT_LENGTH:
            return int(value) if value.isdigit() else None
    return None


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings do not count).

    Only strings and brackets are read, so for a text that is not JSON the answer means
    little; the parser then names the fault.
    """
    if b"\\" in body:
        body = _ESCAPED.sub(b"", body)  # an escaped quote does not end its string
    marks = body.translate(None, _NOT_MARKS)
    brackets = marks.replace(b'""', b"")
    # Where no quote is left, every run of quotes between two brackets was even: no string
    # held a bracket, and what is left is the brackets outside strings.
    has_strings = b'"' in brackets
    codes = np.frombuffer(marks if has_strings else brackets, dtype=np.uint8)
    deepest = depth = 0
    is_quoted = False
    for start in range(0, len(codes), _SCAN_MARKS):
        part = codes[start : start + _SCAN_MARKS]
        steps = _STEPS[part]
        if has_strings:
            inside = np.logical_xor.accumulate(part == _QUOTE)  # from an opening quote on
            if is_quoted:
                inside = ~inside
            steps[inside] = 0
            is_quoted = bool(inside[-1])
        levels = np.cumsum(steps, dtype=np.int64)
        levels += depth
        deepest = max(deepest, int(levels.max()))
        depth = int(levels[-1])
    return deepest


def body_too_large(max_bytes: int) -> BodyTooLargeError:
    """The error answering a JSON body beyond ``max_bytes``."""
    return BodyTooLargeError(
        f"the request body exceeds the limit of {max_bytes} bytes",
        [Problem("body", f"at most {max_bytes} bytes")],
    )


def timeout_error(seconds: float) -> RequestTimeoutError:
    """The error answering a request not answered within ``seconds``."""
    return RequestTimeoutError(
        f"the server took more than {seconds:g} seconds to answer; try again later"
    )


async def send_error(
    send: Send,
    error: TabopsError,
    *,
    close: bool = False,
    headers: Sequence[tuple[bytes, bytes]] = (),
    path: str = "",
) -> int:
    """Answer with an error, with ``headers`` added; returns the status.

    ``close``: end the connection after it. ``path``: the request's, which chooses the
    dialect of the body (``server/errors.py``).
    """
    status, document, extra = error_answer(error, path)
    sent = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(document)).encode()),
        NOSNIFF,
        *((key.lower().encode(), value.encode()) for key, value in extra.items()),
        *headers,
    ]
    if close:
        sent.append(_CLOSE)
    await send({"type": "http.response.start", "status": status, "headers": sent})
    await send({"type": "http.response.body", "body": document})
    return status
