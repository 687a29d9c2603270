"""Registering a version over HTTP: a model trained elsewhere, imported with a data sample."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tabops.config import Settings
from tabops.errors import (
    DataError,
    ImportsBusyError,
    InvalidRequestError,
    Problem,
    TabopsError,
    UnsupportedMediaError,
)
from tabops.names import MODEL_NAME_RULE, is_model_name
from tabops.registry.versions import ModelRegistry
from tabops.security.access import audit_entry
from tabops.server.archives import ArchiveLimits, is_model_folder_archive, unpack_model_folder
from tabops.server.auditing import audited
from tabops.server.deps import AdminAccess, AuditDep, ContextDep, DeploymentDep, SettingsDep
from tabops.server.forms import SpooledForm, spooled_form
from tabops.server.import_form import (
    FILE_FIELDS,
    ImportRequest,
    read_import_form,
    safe_file_name,
    sample_file_name,
)
from tabops.server.limits import timeout_error
from tabops.server.schemas import ErrorResponse, ModelVersionResponse
from tabops.server.uploads import FORM_MEDIA, make_work_folder, media_type, upload_folder

router = APIRouter(prefix="/v1/models", tags=["versions"])

# Once this share of the request timeout has gone, the import stops at its next step: a
# thread cannot be stopped, but an import the client was told timed out registers nothing.
_IMPORT_SHARE = 0.9

_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorResponse,
        "description": "The key is not an admin key (not_authorized), or trust_pickle was "
        "asked while the server does not allow it (forbidden_by_settings: "
        "security.allow_trust_pickle)",
    },
    409: {"model": ErrorResponse, "description": "The registry could not publish the version"},
    413: {"model": ErrorResponse, "description": "The form is larger than an upload may be"},
    415: {"model": ErrorResponse, "description": "The body is not multipart/form-data"},
    503: {
        "model": ErrorResponse,
        "description": "The import did not finish within the request timeout "
        "(request_timeout), or as many imports as the server runs at once are running "
        "(imports_busy, with Retry-After); the database is busy or a store is unavailable",
    },
    422: {
        "model": ErrorResponse,
        "description": "A field is missing or invalid, the model file is unsafe "
        "(unsafe_model: the pickle would import code outside the allow-list) or cannot be "
        "imported (import_failed), the sample does not fit it (invalid_data), or a gate "
        "failed (gate_failed); details name the field: model, sample, target...",
    },
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            FORM_MEDIA: {
                "schema": {
                    "type": "object",
                    "required": ["model", "sample"],
                    "properties": {
                        "model": {
                            "type": "string",
                            "format": "binary",
                            "description": "A pickle, joblib or skops file, or a .zip of an "
                            "MLflow model folder.",
                        },
                        "sample": {
                            "type": "string",
                            "format": "binary",
                            "description": "Rows the model takes (.csv or .parquet).",
                        },
                        "target": {
                            "type": "string",
                            "description": "Column of the sample holding the true labels: "
                            "then metrics, gates and a model card are computed.",
                        },
                        "trust_pickle": {
                            "type": "boolean",
                            "default": False,
                            "description": "Load a pickle that imports code outside the "
                            "allow-list. Refused (403) unless the server sets "
                            "security.allow_trust_pickle.",
                        },
                        "positive_class": {"type": "string"},
                        "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                        "gates": {
                            "type": "array",
                            "items": {"type": "string", "example": "roc_auc>=0.8"},
                        },
                        "promote": {
                            "type": "string",
                            "description": "Alias to point at the new version.",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/{name}/versions",
    status_code=201,
    response_model=ModelVersionResponse,
    responses=_ERRORS,
    openapi_extra=_BODY,
    summary="Import a model trained elsewhere as a new version",
)
async def create_model_version(
    name: str,
    request: Request,
    _caller: AdminAccess,
    settings: SettingsDep,
    deployment: DeploymentDep,
    audit: AuditDep,
    context: ContextDep,
) -> JSONResponse:
    """Register a scikit-learn classifier trained elsewhere, with a sample of its data.

    A multipart form: ``model`` (a pickle, joblib or skops file, or a .zip of an MLflow
    model folder), ``sample`` (CSV or Parquet rows the model takes), and optionally
    ``target``, ``positive_class``, ``threshold``, ``gates`` (repeated, ``roc_auc>=0.8``)
    and ``promote`` (an alias to point at the new version). The answer is the version, as
    ``GET /v1/models/{name}/versions/{version}`` gives it.

    A pickle runs code while it loads: a model file whose pickle would import anything
    outside the allow-list (numpy, scikit-learn estimators and the like) is refused before
    it is loaded (422 ``unsafe_model``, naming what it would import). ``trust_pickle=true``
    loads it anyway, and only when the server's ``security.allow_trust_pickle`` setting is
    on (off by default, 403 otherwise): a caller over the network must not be able to make
    the server run code of its choosing, even with an admin key.

    The import must finish within the server's request timeout (503 ``request_timeout``).
    At most ``security.max_concurrent_imports`` run at once; another is answered 503
    ``imports_busy`` with ``Retry-After`` before its upload is read.
    """
    try:
        async with audited(audit, context, name, 201):
            if not is_model_name(name):
                raise InvalidRequestError(
                    f"invalid model name {name!r}", [Problem("name", MODEL_NAME_RULE)]
                )
            media = media_type(request.headers.get("content-type", ""))
            if media != FORM_MEDIA:
                raise UnsupportedMediaError(
                    f"cannot take {media or 'a body without a type'!r}: send a multipart form "
                    "with a 'model' and a 'sample' file"
                )
            # Taken without waiting: an import past the limit is refused, not queued, so a
            # flood of imports neither waits on the server's threads nor fills its disk.
            running: threading.BoundedSemaphore = request.app.state.import_slots
            if not running.acquire(blocking=False):
                raise ImportsBusyError(
                    f"{settings.security.max_concurrent_imports} model imports are running, "
                    "as many as this server takes at once; retry shortly"
                )
            try:
                document = await _import_upload(request, name, settings, deployment.registry)
            finally:
                running.release()
            # This process serves the new alias at once; others re-read theirs within seconds.
            deployment.forget_aliases(name)
    except anyio.get_cancelled_exc_class():
        # The server's clock ran out and answered 503 (server/limits.py): still on record.
        with anyio.CancelScope(shield=True):
            entry = audit_entry(context, name, "request_timeout", 503)
            await run_in_threadpool(audit.record, entry)
        raise
    location = f"/v1/models/{name}/versions/{document['version']}"
    return JSONResponse(document, status_code=201, headers={"Location": location})


async def _import_upload(
    request: Request, name: str, settings: Settings, registry: ModelRegistry
) -> dict[str, Any]:
    """Spool the form to a work folder, import what it holds; the folder is removed after."""
    folder = make_work_folder(upload_folder(settings.home))
    try:
        max_bytes = settings.queue.max_upload_bytes
        async with spooled_form(request, folder, max_bytes, FILE_FIELDS) as form:
            asked = read_import_form(form, settings)
            limit = settings.security.request_timeout_seconds
            return await run_in_threadpool(
                _import,
                form,
                folder,
                name,
                registry,
                asked,
                ArchiveLimits(max_bytes),
                _stop_after(limit * _IMPORT_SHARE, limit),
            )
    finally:
        # Shielded: removed also when the server's clock has cancelled the request.
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(shutil.rmtree, folder, True)


def _import(
    form: SpooledForm,
    folder: Path,
    name: str,
    registry: ModelRegistry,
    asked: ImportRequest,
    limits: ArchiveLimits,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Import the spooled files; the new version as the versions route answers it."""
    # Imported here: it pulls in training, which serving never needs.
    from tabops.training.importing import import_model

    upload, sample_upload = form.files["model"], form.files["sample"]
    try:
        # Each file in a folder of its own: the client's names cannot collide.
        model = _move(upload.path, folder / "model", safe_file_name(upload.filename, "model"))
        if is_model_folder_archive(model):
            model = unpack_model_folder(model, folder / "unpacked", limits)
        sample = _move(sample_upload.path, folder / "sample", sample_file_name(sample_upload))
        outcome = import_model(model, name, sample, registry, asked.options, progress)
    except TabopsError as exc:
        _hide_folder(exc, folder)
        raise
    number = outcome.version.version
    if asked.promote is not None:
        registry.set_alias(name, asked.promote, number)
    aliases = sorted(alias for alias, v in registry.aliases(name).items() if v == number)
    return {
        "name": name,
        "version": number,
        "aliases": aliases,
        "manifest": outcome.version.manifest.document(),
    }


def _hide_folder(exc: TabopsError, folder: Path) -> None:
    """Keep the server's own paths out of an error's answer; a bad sample gets its field."""

    def hide(text: str) -> str:
        for part in ("model", "sample", "unpacked", ""):
            text = text.replace(f"{folder / part}{os.sep}", "")
        return text

    exc.message = hide(exc.message)
    exc.args = (exc.message,)
    exc.problems = [Problem(problem.field, hide(problem.problem)) for problem in exc.problems]
    if isinstance(exc, DataError) and not exc.problems:  # the sample cannot be read
        exc.problems = [Problem("sample", exc.message)]


def _move(source: Path, folder: Path, name: str) -> Path:
    folder.mkdir()
    target = folder / name
    os.replace(source, target)
    return target


def _stop_after(seconds: float, limit: float) -> Callable[[str], None]:
    """A progress callback that stops the import at its next step once ``seconds`` have gone.

    Never once the version is registered: the step that says so is the last.
    """
    deadline = time.monotonic() + seconds

    def check(step: str) -> None:
        if time.monotonic() > deadline and not step.startswith("registered"):
            raise timeout_error(limit)

    return check
