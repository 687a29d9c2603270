"""Uploads streamed to a spool file under ``<home>/uploads``: a raw file body, or a form's file.

A raw body is a CSV or Parquet file; a form is multipart with a ``file`` part. Neither goes
to the system temp folder, nor whole into memory: each piece of body is counted against the
upload limit as it arrives and written through a small buffer on a worker thread (a form
through python-multipart's streaming parser). The spool file is removed when anything fails
(a limit, a broken form, the client leaving) and once the job service has moved it into a
job's folder. A process killed mid-upload leaves its spool file behind;
``remove_stale_uploads`` clears those at start-up, sparing files young enough to belong to
the live upload of another process. A form of several files (``server/forms.py``) is spooled
into a work folder of its own (``make_work_folder``), cleared the same way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from tabops.atomic import reporting_full_disk
from tabops.errors import (
    InvalidRequestError,
    MalformedBodyError,
    MalformedFormError,
    Problem,
    UploadTooLargeError,
)

FILE_MEDIA = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/parquet": "parquet",
    "application/x-parquet": "parquet",
}
"""Media types of a raw upload body, and the file format each is."""
FORM_MEDIA = "multipart/form-data"
STALE_SECONDS = 3600.0
"""Spool files untouched for this long belong to no live upload."""

_UPLOADS = "uploads"
_SUFFIX = ".part"
_WORK_PREFIX = "work-"
_BUFFER_BYTES = 1024 * 1024
_MODELS_PREFIX = "/v1/models/"
# The routes of a model that take file uploads.
_UPLOAD_ROUTES = ("/jobs", "/feedback", "/versions")


@dataclass(frozen=True)
class FormFile:
    """The ``file`` of a form, spooled: where it is, and the format its name or type says."""

    path: Path
    file_format: str


def upload_folder(home: Path) -> Path:
    """Where uploads are spooled under a tabops home."""
    return home / _UPLOADS


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, without its parameters."""
    return content_type.partition(";")[0].strip().lower()


def is_upload(scope: Scope) -> bool:
    """Whether a request is an upload: a file or form for a model's jobs, feedback or versions."""
    path: str = scope["path"]
    if scope["method"] != "POST" or not path.startswith(_MODELS_PREFIX):
        return False
    name, _, route = path[len(_MODELS_PREFIX) :].partition("/")
    if not name or f"/{route}" not in _UPLOAD_ROUTES:
        return False
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            media = media_type(value.decode("latin-1"))
            return media == FORM_MEDIA or media in FILE_MEDIA
    return False


@asynccontextmanager
async def spooled_body(request: Request, folder: Path, max_bytes: int) -> AsyncIterator[Path]:
    """The request's body in a spool file, removed when the block ends unless moved away.

    Raises:
        UploadTooLargeError: the body passes ``max_bytes``.
        MalformedBodyError: the client left before the end of the body.
        StorageFullError: the disk has no room left for it.
    """
    spool = Spool(folder)
    try:
        await receive_counted(request, max_bytes, spool.write)
        yield await spool.finish()
    finally:
        spool.discard()


@asynccontextmanager
async def spooled_form_file(
    request: Request, folder: Path, max_bytes: int, file_format: Callable[[str, str], str]
) -> AsyncIterator[FormFile]:
    """The ``file`` of a multipart form in a spool file, removed as ``spooled_body``'s.

    ``file_format`` names the format of a file from its name and content type (both may be
    empty), or raises: it is called as soon as the file's part headers have arrived.

    Raises:
        UploadTooLargeError: the body passes ``max_bytes``.
        MalformedFormError: the form is broken.
        MalformedBodyError: the client left before the end of the body.
        InvalidRequestError: the form holds no ``file``, or two.
        StorageFullError: the disk has no room left for it.
    """
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedFormError(
            "the form has no boundary", [Problem("body", "multipart/form-data needs a boundary")]
        )
    spool = Spool(folder)
    form = _Form(boundary, file_format)

    async def take(chunk: bytes) -> None:
        for data in form.feed(chunk):
            await spool.write(data)

    try:
        await receive_counted(request, max_bytes, take)
        found = form.found_format()
        yield FormFile(await spool.finish(), found)
    finally:
        spool.discard()


def upload_too_large(max_bytes: int) -> UploadTooLargeError:
    """The error answering an upload beyond ``max_bytes``."""
    return UploadTooLargeError(
        f"the upload exceeds the limit of {max_bytes} bytes",
        [Problem("body", f"at most {max_bytes} bytes")],
    )


def make_work_folder(folder: Path) -> Path:
    """A new private folder under the upload folder, for the files of one request.

    Its route removes it when done; one left by a killed process goes as a stale upload.
    """
    with reporting_full_disk(_UPLOADS):
        folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=folder, prefix=_WORK_PREFIX))


def remove_stale_uploads(folder: Path, older_than_seconds: float = STALE_SECONDS) -> int:
    """Delete spool files and work folders untouched for a while; returns how many."""
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than_seconds
    removed = 0
    for path in folder.glob(f"*{_SUFFIX}"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # finished or removed meanwhile
            continue
    for path in folder.glob(f"{_WORK_PREFIX}*"):
        try:
            if path.is_dir() and path.stat().st_mtime < cutoff:
                shutil.rmtree(path)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


class Spool:
    """A spool file being written through a buffer; removed by ``discard`` unless moved."""

    def __init__(self, folder: Path) -> None:
        with reporting_full_disk(_UPLOADS):
            folder.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=folder, prefix="upload-", suffix=_SUFFIX)
        self.path = Path(name)
        self._stream = os.fdopen(handle, "wb")
        self._pending = bytearray()

    async def write(self, data: bytes) -> None:
        """Add a piece of the file (written out once a buffer's worth has gathered)."""
        self._pending += data
        if len(self._pending) >= _BUFFER_BYTES:
            await self._flush()

    async def finish(self) -> Path:
        """Write out what is buffered and close the file; returns its path."""
        await self._flush()
        await run_in_threadpool(_sync_and_close, self._stream)
        return self.path

    def discard(self) -> None:
        """Close and remove the file, unless it was moved away."""
        with suppress(OSError):  # what is still buffered is thrown away anyway
            self._stream.close()
        self.path.unlink(missing_ok=True)

    async def _flush(self) -> None:
        pending, self._pending = self._pending, bytearray()
        if pending:
            await run_in_threadpool(_write, self._stream, pending)


class _Form:
    """A multipart form read piece by piece, giving back the bytes of its ``file`` part."""

    def __init__(self, boundary: bytes, file_format: Callable[[str, str], str]) -> None:
        self._file_format = file_format
        self._format: str | None = None
        self._headers: dict[bytes, bytes] = {}
        self._field = self._value = b""
        self._in_file = self._is_complete = False
        self._data: list[bytes] = []
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_end": self._on_end,
            },
        )

    def feed(self, chunk: bytes) -> list[bytes]:
        """Parse a piece of the body; returns the pieces of the file it held."""
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise MalformedFormError(
                "the form is malformed", [Problem("body", "not multipart/form-data")]
            ) from exc
        data, self._data = self._data, []
        return data

    def found_format(self) -> str:
        """The format of the form's file, once the whole form has been read."""
        if not self._is_complete:
            raise MalformedFormError(
                "the form ends before its closing boundary", [Problem("body", "incomplete form")]
            )
        if self._format is None:
            raise InvalidRequestError("the form has no file", [Problem("file", "required")])
        return self._format

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    # Headers are held in memory, unlike a part's data: the parser bounds their number and size.
    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") != b"file":
            return  # another field: its data is read past
        if self._format is not None:
            raise InvalidRequestError(
                "the form holds more than one file", [Problem("file", "send one file")]
            )
        filename = options.get(b"filename", b"").decode("utf-8", "replace")
        content_type = self._headers.get(b"content-type", b"").decode("latin-1")
        self._format = self._file_format(filename, media_type(content_type))
        self._in_file = True

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._data.append(data[start:end])

    def _on_end(self) -> None:
        self._is_complete = True


async def receive_counted(
    request: Request, max_bytes: int, take: Callable[[bytes], Awaitable[None]]
) -> None:
    """Pass each piece of the body to ``take`` as it arrives, counting them."""
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise upload_too_large(max_bytes)
            await take(chunk)
    except ClientDisconnect as exc:
        raise MalformedBodyError(
            "the client left before the end of the upload", [Problem("body", "incomplete")]
        ) from exc


def _write(stream: IO[bytes], data: bytearray) -> None:
    with reporting_full_disk(_UPLOADS):
        stream.write(data)


def _sync_and_close(stream: IO[bytes]) -> None:
    try:
        with reporting_full_disk(_UPLOADS):
            stream.flush()
            os.fsync(stream.fileno())
    finally:
        stream.close()
