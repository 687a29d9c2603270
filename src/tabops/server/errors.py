"""The one place where errors become HTTP responses, all in one JSON shape."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tabops.errors import (
    ArtifactIntegrityError,
    BatchTooLargeError,
    BodyTooLargeError,
    CardNotFoundError,
    DatabaseBusyError,
    DatabaseError,
    DataError,
    EmptyBodyError,
    EntityNotFoundError,
    FeaturesUnavailableError,
    FeatureViewNotFoundError,
    GateFailedError,
    InvalidInputError,
    InvalidRequestError,
    JobError,
    JobNotFinishedError,
    JobNotFoundError,
    MalformedBodyError,
    MalformedFormError,
    ModelImportError,
    ModelNotFoundError,
    NotAuthenticatedError,
    NotAuthorizedError,
    OriginNotAllowedError,
    PathNotAllowedError,
    PredictionNotFoundError,
    Problem,
    ProjectError,
    RateLimitedError,
    RegistryError,
    RequestTimeoutError,
    ResourceNotFoundError,
    StorageFullError,
    StoredFeaturesInvalidError,
    StoreUnavailableError,
    TabopsError,
    UnsafeModelError,
    UnsupportedMediaError,
    UploadTooLargeError,
    VersionNotFoundError,
)

logger = logging.getLogger("tabops.server")

_STATUS: list[tuple[type[TabopsError], int, str]] = [
    (EmptyBodyError, 400, "empty_body"),
    (MalformedFormError, 400, "malformed_form"),
    (MalformedBodyError, 400, "malformed_json"),
    (InvalidRequestError, 422, "invalid_request"),
    (BatchTooLargeError, 413, "batch_too_large"),
    (BodyTooLargeError, 413, "body_too_large"),
    (UploadTooLargeError, 413, "upload_too_large"),
    (UnsupportedMediaError, 415, "unsupported_media_type"),
    (PredictionNotFoundError, 404, "prediction_not_found"),
    (ResourceNotFoundError, 404, "not_found"),
    (NotAuthenticatedError, 401, "not_authenticated"),
    (PathNotAllowedError, 403, "path_not_allowed"),
    (NotAuthorizedError, 403, "not_authorized"),
    (OriginNotAllowedError, 403, "origin_not_allowed"),
    (RateLimitedError, 429, "rate_limited"),
    (ModelNotFoundError, 404, "model_not_found"),
    (VersionNotFoundError, 404, "version_not_found"),
    (CardNotFoundError, 404, "card_not_found"),
    (ArtifactIntegrityError, 503, "model_refused"),
    (StoreUnavailableError, 503, "store_unavailable"),
    (RegistryError, 409, "registry_conflict"),
    (InvalidInputError, 422, "invalid_input"),
    (DataError, 422, "invalid_data"),
    (ProjectError, 422, "invalid_project"),
    (GateFailedError, 422, "gate_failed"),
    (UnsafeModelError, 422, "unsafe_model"),
    (ModelImportError, 422, "import_failed"),
    (EntityNotFoundError, 404, "entity_not_found"),
    (FeatureViewNotFoundError, 404, "view_not_found"),
    (FeaturesUnavailableError, 409, "features_unavailable"),
    (StoredFeaturesInvalidError, 409, "stored_features_invalid"),
    (JobNotFoundError, 404, "job_not_found"),
    (JobNotFinishedError, 409, "job_not_finished"),
    (JobError, 409, "job_has_no_file"),
    (DatabaseBusyError, 503, "database_busy"),
    (DatabaseError, 503, "database_unavailable"),
    (StorageFullError, 507, "insufficient_storage"),
    (RequestTimeoutError, 503, "request_timeout"),
]


def status_of(exc: TabopsError) -> tuple[int, str]:
    """The HTTP status and error code of a tabops error."""
    for error_type, status, code in _STATUS:
        if isinstance(exc, error_type):
            return status, code
    return 500, "internal_error"


_INTERNAL = "an internal error occurred; see server log"
_REALM = 'Bearer realm="tabops"'
_RETRY_SECONDS = 5  # what a client is told to wait when the server is busy or full


def headers_of(exc: TabopsError, status: int) -> dict[str, str]:
    """The headers an error's answer carries besides its body.

    ``WWW-Authenticate`` on 401 and 403 (RFC 6750: a missing or unknown key, a key
    outside its scope), ``Retry-After`` on 429 and on a busy or timed-out 503.
    """
    if status == 401:
        return {"WWW-Authenticate": _REALM}
    if status == 403 and not isinstance(exc, PathNotAllowedError | OriginNotAllowedError):
        return {"WWW-Authenticate": f'{_REALM}, error="insufficient_scope"'}
    if isinstance(exc, RateLimitedError):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    if isinstance(exc, DatabaseBusyError | RequestTimeoutError):
        return {"Retry-After": str(_RETRY_SECONDS)}
    return {}


def error_answer(exc: BaseException) -> tuple[int, bytes, dict[str, str]]:
    """The status, JSON body and headers answering any exception (for the ASGI fast path).

    A tabops error maps through the table above; anything else is logged with its
    traceback and answered as a 500 that reveals nothing of it.
    """
    if isinstance(exc, TabopsError):
        status, code = status_of(exc)
        if status == 500:
            logger.error("unmapped error: %s", exc.message)
        document = orjson.dumps(error_document(code, exc.message, exc.problems))
        return status, document, headers_of(exc, status)
    logger.error("unexpected error", exc_info=exc)
    return 500, orjson.dumps(error_document("internal_error", _INTERNAL)), {}


def error_document(code: str, message: str, problems: Sequence[Problem] = ()) -> dict[str, Any]:
    """The API's one error shape."""
    details = [{"field": p.field, "problem": p.problem} for p in problems]
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status: int,
    code: str,
    message: str,
    problems: Sequence[Problem] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON error response in the API's one shape."""
    document = error_document(code, message, problems)
    return JSONResponse(status_code=status, content=document, headers=headers)


def problems_from_pydantic(errors: Sequence[Any], prefix: str = "") -> list[Problem]:
    """One problem per pydantic error, naming the field by its dotted path."""
    problems = []
    for error in errors:
        parts = [str(part) for part in error.get("loc", ()) if part != "body"]
        field = ".".join(parts)
        if prefix:
            field = f"{prefix}.{field}" if field else prefix
        message = str(error.get("msg", "is invalid"))
        kind = error.get("type")
        if kind == "missing":
            message = "field required"
        elif kind == "extra_forbidden":
            message = "unknown field"
        problems.append(Problem(field or "body", message))
    return problems


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that map every error to the one JSON shape."""

    @app.exception_handler(TabopsError)
    async def handle_tabops_error(_request: Request, exc: TabopsError) -> JSONResponse:
        status, code = status_of(exc)
        if status == 500:
            logger.error("unmapped error: %s", exc.message)
        return error_response(status, code, exc.message, exc.problems, headers_of(exc, status))

    @app.exception_handler(RequestValidationError)
    async def handle_validation_error(
        _request: Request, exc: RequestValidationError
    ) -> JSONResponse:
        errors = exc.errors()
        if any(error.get("type") == "json_invalid" for error in errors):
            message = "the request body is not valid JSON"
            return error_response(400, "malformed_json", message, [Problem("body", message)])
        problems = problems_from_pydantic(errors)
        return error_response(422, "invalid_request", "the request is invalid", problems)

    @app.exception_handler(StarletteHTTPException)
    async def handle_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, str(exc.detail))
        # Keep headers such as Allow (required on a 405) that the exception carries.
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def handle_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error", exc_info=exc)
        # Sent from outside every middleware, so the one adding this header to all other
        # answers never sees it (server/browser.py).
        nosniff = {"X-Content-Type-Options": "nosniff"}
        return error_response(500, "internal_error", _INTERNAL, headers=nosniff)
