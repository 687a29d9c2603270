"""Multipart forms read as they arrive: their files spooled to disk, short text fields kept.

``spooled_form`` reads the body with python-multipart's streaming parser, each file part
into its own spool file (``server/uploads.py``), each text field into memory, bounded in
number and size. ``spooled_form_file`` is the form of one CSV or Parquet ``file`` (a job's
rows, a file of labels): its other parts are read past. Nothing of a form is trusted: a
file's name as the client gave it is kept only as text, never used as a path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from tabops.errors import InvalidRequestError, MalformedFormError, Problem, UnsupportedMediaError
from tabops.server.uploads import Spool, file_format_of, media_type, receive_counted

MAX_FIELDS = 100
"""Most text fields one form may hold."""
MAX_FIELD_BYTES = 8 * 1024
"""Longest value of one text field."""
FILE_FIELD = "file"
"""The field of the one file of ``spooled_form_file``."""

FileCheck = Callable[[str, str, str], None]
"""Called with a file's field, name and media type once its part's headers are read; raises
to refuse the file before any of it is spooled."""


@dataclass(frozen=True)
class FormUpload:
    """A file of a form, spooled: where it is, and the name and type the client gave it."""

    path: Path
    filename: str
    media_type: str


@dataclass(frozen=True)
class SpooledForm:
    """A form read whole: its files by field name, and its text fields' values in order."""

    files: dict[str, FormUpload] = field(default_factory=dict)
    fields: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class FormFile:
    """The ``file`` of a form, spooled: where it is, and the format its name or type says."""

    path: Path
    file_format: str


@asynccontextmanager
async def spooled_form(
    request: Request,
    folder: Path,
    max_bytes: int,
    file_fields: Collection[str],
    *,
    has_text_fields: bool = True,
    check_file: FileCheck | None = None,
) -> AsyncIterator[SpooledForm]:
    """The request's multipart form, its files spooled under ``folder`` until the block ends.

    Args:
        request: a request with a ``multipart/form-data`` body.
        folder: where the files are written.
        max_bytes: the most the whole body may hold.
        file_fields: the names of the fields that are files (each at most once).
        has_text_fields: keep the other fields as text; when False, every part that is not
            one of ``file_fields`` is read past, unchecked.
        check_file: called on each file as soon as its part's headers are read.

    Raises:
        UploadTooLargeError: the body passes ``max_bytes``.
        MalformedFormError: the form is broken or cut short.
        MalformedBodyError: the client left before the end of the body.
        InvalidRequestError: a file field twice, a file in a text field, or too many or too
            long text fields (the field named).
        StorageFullError: the disk has no room left.
    """
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedFormError(
            "the form has no boundary", [Problem("body", "multipart/form-data needs a boundary")]
        )
    form = _FormReader(boundary, folder, frozenset(file_fields), has_text_fields, check_file)

    async def take(chunk: bytes) -> None:
        for spool, data in form.feed(chunk):
            await spool.write(data)

    try:
        await receive_counted(request, max_bytes, take)
        form.check_complete()
        files = {
            name: FormUpload(await spool.finish(), filename, media)
            for name, (spool, filename, media) in form.files.items()
        }
        yield SpooledForm(files, form.fields)
    finally:
        for spool, _filename, _media in form.files.values():
            spool.discard()


@asynccontextmanager
async def spooled_form_file(
    request: Request, folder: Path, max_bytes: int
) -> AsyncIterator[FormFile]:
    """The ``file`` of a multipart form in a spool file, removed as ``spooled_body``'s.

    Its format is told from its name, else its media type, as soon as its headers arrive.

    Raises:
        UploadTooLargeError: the body passes ``max_bytes``.
        MalformedFormError: the form is broken.
        MalformedBodyError: the client left before the end of the body.
        InvalidRequestError: the form holds no ``file``, or two.
        UnsupportedMediaError: neither the file's name nor its type says CSV or Parquet.
        StorageFullError: the disk has no room left for it.
    """
    formats: dict[str, str] = {}

    def check_format(name: str, filename: str, media: str) -> None:
        found = file_format_of(filename, media)
        if found is None:
            raise UnsupportedMediaError(
                f"cannot tell the format of {filename!r}: name it .csv or .parquet",
                [Problem(name, "expected a .csv or .parquet file")],
            )
        formats[name] = found

    spooling = spooled_form(
        request, folder, max_bytes, (FILE_FIELD,), has_text_fields=False, check_file=check_format
    )
    async with spooling as form:
        upload = form.files.get(FILE_FIELD)
        if upload is None:
            raise InvalidRequestError("the form has no file", [Problem(FILE_FIELD, "required")])
        yield FormFile(upload.path, formats[FILE_FIELD])


class _FormReader:
    """A multipart form parsed piece by piece: file data routed to spools, fields gathered."""

    def __init__(
        self,
        boundary: bytes,
        folder: Path,
        file_fields: frozenset[str],
        has_text_fields: bool,
        check_file: FileCheck | None,
    ) -> None:
        self.files: dict[str, tuple[Spool, str, str]] = {}
        self.fields: dict[str, list[str]] = {}
        self._folder = folder
        self._file_fields = file_fields
        self._has_text_fields = has_text_fields
        self._check_file = check_file
        self._headers: dict[bytes, bytes] = {}
        self._header = self._value = b""
        self._spool: Spool | None = None
        self._text: bytearray | None = None
        self._name = ""
        self._count = 0
        self._is_complete = False
        self._data: list[tuple[Spool, bytes]] = []
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )

    def feed(self, chunk: bytes) -> list[tuple[Spool, bytes]]:
        """Parse a piece of the body; returns the file data it held, with its spool."""
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise MalformedFormError(
                "the form is malformed", [Problem("body", "not multipart/form-data")]
            ) from exc
        data, self._data = self._data, []
        return data

    def check_complete(self) -> None:
        """Raise unless the form ended with its closing boundary."""
        if not self._is_complete:
            raise MalformedFormError(
                "the form ends before its closing boundary", [Problem("body", "incomplete form")]
            )

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._spool = None
        self._text = None

    # Headers are held in memory, unlike a part's data: the parser bounds their number and size.
    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._header.lower()] = self._value
        self._header = self._value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if name in self._file_fields:
            self._open_file(name, (filename or b"").decode("utf-8", "replace"))
        elif self._has_text_fields:
            self._open_text(name, is_file=filename is not None)
        # Otherwise the part is read past: neither spool nor text takes its data.

    def _open_file(self, name: str, filename: str) -> None:
        if name in self.files:
            raise InvalidRequestError(
                f"the form holds more than one {name!r}", [Problem(name, "send one file")]
            )
        content_type = self._headers.get(b"content-type", b"").decode("latin-1")
        media = media_type(content_type)
        if self._check_file is not None:
            self._check_file(name, filename, media)
        self._spool = Spool(self._folder)
        self.files[name] = (self._spool, filename, media)

    def _open_text(self, name: str, *, is_file: bool) -> None:
        if not name:
            raise MalformedFormError(
                "a part of the form has no name", [Problem("body", "every part needs a name")]
            )
        if is_file:
            raise InvalidRequestError(
                f"the form field {name!r} takes text, not a file",
                [Problem(name, f"files go in {', '.join(sorted(self._file_fields))}")],
            )
        self._count += 1
        if self._count > MAX_FIELDS:
            raise InvalidRequestError(
                "the form holds too many fields", [Problem("body", f"at most {MAX_FIELDS}")]
            )
        self._text = bytearray()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._spool is not None:
            self._data.append((self._spool, data[start:end]))
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise InvalidRequestError(
                    f"the form field {self._name!r} is too long",
                    [Problem(self._name, f"at most {MAX_FIELD_BYTES} bytes")],
                )

    def _on_part_end(self) -> None:
        if self._text is not None:
            try:
                value = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequestError(
                    f"the form field {self._name!r} is not UTF-8 text",
                    [Problem(self._name, "not UTF-8 text")],
                ) from None
            self.fields.setdefault(self._name, []).append(value)
            self._text = None

    def _on_end(self) -> None:
        self._is_complete = True
