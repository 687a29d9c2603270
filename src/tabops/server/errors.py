"""The one place where errors become HTTP responses.

Every error maps to one status and code here. The API writes them in its one JSON shape;
the routes of a protocol other clients speak (the Open Inference Protocol under ``/v2``,
MLflow's scoring server) write the same errors in that protocol's own shape, chosen by the
request's path (``dialect_of``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
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
    ForbiddenBySettingsError,
    GateFailedError,
    ImportsBusyError,
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
    (ForbiddenBySettingsError, 403, "forbidden_by_settings"),
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
    (ImportsBusyError, 503, "imports_busy"),
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
    outside its scope; not when no key could do it: a path, an origin, a setting),
    ``Retry-After`` on 429 and on a busy or timed-out 503.
    """
    if status == 401:
        return {"WWW-Authenticate": _REALM}
    if status == 403 and not isinstance(
        exc, PathNotAllowedError | OriginNotAllowedError | ForbiddenBySettingsError
    ):
        return {"WWW-Authenticate": f'{_REALM}, error="insufficient_scope"'}
    if isinstance(exc, RateLimitedError):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    if isinstance(exc, DatabaseBusyError | ImportsBusyError | RequestTimeoutError):
        return {"Retry-After": str(_RETRY_SECONDS)}
    return {}


def error_answer(exc: BaseException, path: str = "") -> tuple[int, bytes, dict[str, str]]:
    """The status, JSON body and headers answering any exception (for the ASGI fast path).

    A tabops error maps through the table above; anything else is logged with its
    traceback and answered as a 500 that reveals nothing of it. ``path`` chooses the
    dialect the body is written in.
    """
    dialect = dialect_of(path)
    if isinstance(exc, TabopsError):
        status, code = status_of(exc)
        if status == 500:
            logger.error("unmapped error: %s", exc.message)
        status, document = dialect(status, code, exc.message, exc.problems)
        return status, orjson.dumps(document), headers_of(exc, status)
    logger.error("unexpected error", exc_info=exc)
    status, document = dialect(500, "internal_error", _INTERNAL, ())
    return status, orjson.dumps(document), {}


def error_document(code: str, message: str, problems: Sequence[Problem] = ()) -> dict[str, Any]:
    """The API's one error shape."""
    details = [{"field": p.field, "problem": p.problem} for p in problems]
    return {"error": {"code": code, "message": message, "details": details}}


Dialect = Callable[[int, str, str, Sequence[Problem]], tuple[int, dict[str, Any]]]
"""Writes an error (status, code, message, problems) as a protocol answers it: status, body."""


def api_dialect(
    status: int, code: str, message: str, problems: Sequence[Problem]
) -> tuple[int, dict[str, Any]]:
    """The API's own shape, at the API's own status."""
    return status, error_document(code, message, problems)


def _described(message: str, problems: Sequence[Problem]) -> str:
    """The message with every problem appended, for protocols whose errors are one string."""
    if not problems:
        return message
    return f"{message}: " + "; ".join(f"{p.field}: {p.problem}" for p in problems)


def v2_dialect(
    status: int, code: str, message: str, problems: Sequence[Problem]
) -> tuple[int, dict[str, Any]]:
    """The Open Inference Protocol's ``{"error": "..."}``, naming every field in the string.

    The protocol answers every bad request with 400, so the API's 422 becomes 400 here.
    """
    return 400 if status == 422 else status, {"error": _described(message, problems)}


_MLFLOW_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
    507: "TEMPORARILY_UNAVAILABLE",
}
"""MLflow's error codes (names its clients know) by status; the rest are BAD_REQUEST."""


def mlflow_dialect(
    status: int, code: str, message: str, problems: Sequence[Problem]
) -> tuple[int, dict[str, Any]]:
    """MLflow's scoring server errors: ``{"error_code", "message"}``, as its clients read them.

    Bad input is a 400 ``BAD_REQUEST`` there, so the API's 422 is answered as one. Other
    statuses stay (413, 415, 429, ...) with the MLflow code nearest to them; an unknown
    route is ``ENDPOINT_NOT_FOUND``.
    """
    if status == 422:
        status = 400
    if status >= 500:
        error_code = _MLFLOW_CODES.get(status, "INTERNAL_ERROR")
    elif code == "not_found":
        error_code = "ENDPOINT_NOT_FOUND"
    else:
        error_code = _MLFLOW_CODES.get(status, "BAD_REQUEST")
    return status, {"error_code": error_code, "message": _described(message, problems)}


_MLFLOW_PATHS = frozenset({"/invocations", "/ping", "/health", "/version"})


def dialect_of(path: str) -> Dialect:
    """The dialect errors of a request to ``path`` are written in."""
    if path == "/v2" or path.startswith("/v2/"):
        return v2_dialect
    if path in _MLFLOW_PATHS or (path.startswith("/v1/models/") and path.endswith("/invocations")):
        return mlflow_dialect
    return api_dialect


def error_response(
    status: int,
    code: str,
    message: str,
    problems: Sequence[Problem] = (),
    headers: dict[str, str] | None = None,
    path: str = "",
) -> JSONResponse:
    """A JSON error response, in the dialect of the route at ``path`` (the API's by default)."""
    status, document = dialect_of(path)(status, code, message, problems)
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
    async def handle_tabops_error(request: Request, exc: TabopsError) -> JSONResponse:
        status, code = status_of(exc)
        if status == 500:
            logger.error("unmapped error: %s", exc.message)
        headers = headers_of(exc, status)
        path = request.url.path
        return error_response(status, code, exc.message, exc.problems, headers, path)

    @app.exception_handler(RequestValidationError)
    async def handle_validation_error(
        request: Request, exc: RequestValidationError
    ) -> JSONResponse:
        errors = exc.errors()
        path = request.url.path
        if any(error.get("type") == "json_invalid" for error in errors):
            message = "the request body is not valid JSON"
            problems = [Problem("body", message)]
            return error_response(400, "malformed_json", message, problems, path=path)
        problems = problems_from_pydantic(errors)
        message = "the request is invalid"
        return error_response(422, "invalid_request", message, problems, path=path)

    @app.exception_handler(StarletteHTTPException)
    async def handle_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, str(exc.detail), path=request.url.path)
        # Keep headers such as Allow (required on a 405) that the exception carries.
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error", exc_info=exc)
        # Sent from outside every middleware, so the one adding this header to all other
        # answers never sees it (server/browser.py).
        nosniff = {"X-Content-Type-Options": "nosniff"}
        path = request.url.path
        return error_response(500, "internal_error", _INTERNAL, headers=nosniff, path=path)
