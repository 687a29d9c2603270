"""The body of a page's POST form: read within a bound, checked for its CSRF token, its fields."""

from __future__ import annotations

import hmac
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from tabops.errors import (
    BodyTooLargeError,
    InvalidRequestError,
    MalformedFormError,
    NotAuthorizedError,
    Problem,
    UnsupportedMediaError,
)
from tabops.names import ALIAS_RULE, is_alias

if TYPE_CHECKING:
    from tabops.server.ui.render import UiUser

MAX_FORM_BYTES = 64 * 1024
"""The most a page's form body may hold, unless its route allows more."""
MAX_FORM_FIELDS = 200


async def checked_form(
    request: Request, user: UiUser, *, max_bytes: int = MAX_FORM_BYTES
) -> FormData:
    """The fields of a POST form (url-encoded or multipart), once its CSRF token matches.

    Raises:
        BodyTooLargeError: the body passes ``max_bytes``.
        UnsupportedMediaError: the body is not a form.
        MalformedFormError: a multipart body does not parse.
        NotAuthorizedError: the ``csrf`` field is missing or not the user's token.
    """
    form = await read_form(request, max_bytes)
    sent = form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), user.csrf.encode()):
        raise NotAuthorizedError(
            "the form is out of date or did not come from this site; reload the page and retry",
            [Problem("csrf", "missing or not this session's token")],
        )
    return form


async def read_form(request: Request, max_bytes: int = MAX_FORM_BYTES) -> FormData:
    """A form body read within ``max_bytes`` (no CSRF check: see ``checked_form``)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not media and request.headers.get("content-length", "0") == "0":
        return FormData()  # a POST without a body: a form without fields
    if media not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise UnsupportedMediaError(
            "this page takes a form",
            [Problem("Content-Type", "send application/x-www-form-urlencoded")],
        )
    body = await _bounded_body(request, max_bytes)
    if media == "multipart/form-data":

        async def stream() -> AsyncGenerator[bytes, None]:
            yield body

        parser = MultiPartParser(
            request.headers, stream(), max_files=MAX_FORM_FIELDS, max_fields=MAX_FORM_FIELDS
        )
        try:
            return await parser.parse()
        except MultiPartException as exc:
            raise MalformedFormError(
                "the form is malformed", [Problem("body", exc.message)]
            ) from exc
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedFormError("the form is malformed", [Problem("body", str(exc))]) from exc
    return FormData(list[tuple[str, str | UploadFile]](pairs))


async def _bounded_body(request: Request, max_bytes: int) -> bytes:
    too_large = BodyTooLargeError(
        "the form is too large", [Problem("body", f"at most {max_bytes} bytes")]
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def alias_field(form: FormData) -> str:
    """The form's ``alias`` field (422 naming it when missing or not an alias's name)."""
    alias = form.get("alias")
    if not isinstance(alias, str) or not alias:
        raise InvalidRequestError("the form names no alias", [Problem("alias", "required")])
    return checked_alias(alias)


def checked_alias(alias: str) -> str:
    """The alias asked for, refused with a 422 naming it when no alias may be so named."""
    if not is_alias(alias):
        raise InvalidRequestError(
            f"invalid alias {alias!r}: {ALIAS_RULE}", [Problem("alias", ALIAS_RULE)]
        )
    return alias


def optional_number_field(form: FormData, field: str) -> int | None:
    """A version number field that may be left empty (``None``)."""
    return None if form.get(field) in (None, "") else number_field(form, field)


def number_field(form: FormData, field: str) -> int:
    """A version number field (422 naming it when it is not one)."""
    value = form.get(field)
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise InvalidRequestError(
            f"the form's {field} is not a version number", [Problem(field, "a version number")]
        )
    return int(value)
