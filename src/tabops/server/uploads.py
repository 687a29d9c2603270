"""Uploads streamed to a spool file under ``<home>/uploads``: a raw file body, or a form's file.

A raw body is a CSV or Parquet file; a form is multipart (``server/forms.py``), each of its
files spooled the same way. Nothing goes to the system temp folder, nor whole into memory:
each piece of body is counted against the upload limit as it arrives and written through a
small buffer on a worker thread. The spool file is removed when anything fails (a limit, a
broken form, the client leaving) and once the job service has moved it into a job's folder.
A process killed mid-upload leaves its spool file behind; ``remove_stale_uploads`` clears
those at start-up, sparing files young enough to belong to the live upload of another
process. A form of several files is spooled into a work folder of its own
(``make_work_folder``), cleared the same way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import IO

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from tabops.atomic import reporting_full_disk
from tabops.errors import MalformedBodyError, Problem, UploadTooLargeError

FILE_MEDIA = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/parquet": "parquet",
    "application/x-parquet": "parquet",
}
"""Media types of a raw upload body, and the file format each is."""
FILE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
"""File name suffixes of an uploaded file, and the format each is."""
FORM_MEDIA = "multipart/form-data"
STALE_SECONDS = 3600.0
"""Spool files untouched for this long belong to no live upload."""

_UPLOADS = "uploads"
_SUFFIX = ".part"
_WORK_PREFIX = "work-"
_BUFFER_BYTES = 1024 * 1024
_MODELS_PREFIX = "/v1/models/"
# The routes of a model that take file uploads (in the API, and the UI's batch page).
_UPLOAD_ROUTES: tuple[str, ...] = ("/jobs", "/feedback", "/versions")
_UI_MODELS_PREFIX = "/ui/models/"
_UI_UPLOAD_ROUTES: tuple[str, ...] = ("/batch",)


def upload_folder(home: Path) -> Path:
    """Where uploads are spooled under a tabops home."""
    return home / _UPLOADS


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, without its parameters."""
    return content_type.partition(";")[0].strip().lower()


def file_format_of(filename: str, media: str) -> str | None:
    """The format (``csv``, ``parquet``) a file's name says, else its media type, else None.

    The name is the client's, taken as text: its last part after either kind of slash.
    """
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    return FILE_SUFFIXES.get(suffix) or FILE_MEDIA.get(media)


def is_upload(scope: Scope) -> bool:
    """Whether a request is an upload: a file or form for a model's jobs, feedback or versions.

    The UI's batch page (``/ui/models/{name}/batch``) takes its form as the jobs route does.
    """
    path: str = scope["path"]
    if scope["method"] != "POST":
        return False
    if path.startswith(_MODELS_PREFIX):
        rest, routes = path[len(_MODELS_PREFIX) :], _UPLOAD_ROUTES
    elif path.startswith(_UI_MODELS_PREFIX):
        rest, routes = path[len(_UI_MODELS_PREFIX) :], _UI_UPLOAD_ROUTES
    else:
        return False
    name, _, route = rest.partition("/")
    if not name or f"/{route}" not in routes:
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
