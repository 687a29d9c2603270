"""Feedback: late labels of served predictions, as JSON or a CSV/Parquet upload."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from tabops.errors import (
    EmptyBodyError,
    InvalidRequestError,
    MalformedBodyError,
    Problem,
    UnsupportedMediaError,
)
from tabops.monitoring.feedback import LabelItem, read_labels
from tabops.monitoring.labels import LabelStore
from tabops.monitoring.segments import LogReader
from tabops.server.deps import LogReaderDep, PredictAccess, SettingsDep, WatchDep
from tabops.server.forms import spooled_form_file
from tabops.server.schemas import ErrorDetail, ErrorResponse
from tabops.server.uploads import FILE_MEDIA, FORM_MEDIA, media_type, spooled_body, upload_folder

router = APIRouter(prefix="/v1/models", tags=["feedback"])

MAX_LABELS = 100_000
"""Most labels one request may carry, as JSON items or file rows."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown model"},
    413: {"model": ErrorResponse, "description": "More labels or bytes than a request takes"},
    415: {"model": ErrorResponse, "description": "Neither JSON, CSV, Parquet nor a form upload"},
    422: {"model": ErrorResponse, "description": "A label is invalid (every one named)"},
}
_SCALAR: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}


def _scalar(value: Any) -> Any:
    if not isinstance(value, str | int | float | bool):
        raise ValueError("a class value or name: a string, number or boolean")
    if isinstance(value, str) and len(value) > 200:
        raise ValueError("at most 200 characters")
    return value


class LabelRequest(BaseModel):
    """One label: of a prediction id, or of an entity's latest prediction before a time."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: str | None = Field(default=None, max_length=64)
    entity_id: str | None = Field(default=None, min_length=1, max_length=200)
    event_time: datetime | None = Field(
        default=None, description="ISO 8601; a time without a zone is UTC."
    )
    label: Annotated[Any, AfterValidator(_scalar)] = Field(
        description="One of the model's two classes, by value or name.", json_schema_extra=_SCALAR
    )

    @model_validator(mode="after")
    def _names_one_prediction(self) -> LabelRequest:
        if self.prediction_id is not None and self.entity_id is not None:
            raise ValueError("give a prediction_id or an entity_id, not both")
        if self.prediction_id is None and (self.entity_id is None or self.event_time is None):
            raise ValueError("give a prediction_id, or an entity_id and an event_time")
        return self


class FeedbackRequest(BaseModel):
    """Labels of served predictions."""

    model_config = ConfigDict(extra="forbid")

    labels: list[LabelRequest] = Field(min_length=1, max_length=MAX_LABELS)


class FeedbackResponse(BaseModel):
    """What became of the labels: stored, replacing earlier ones, or matching no prediction."""

    accepted: int
    replaced: int
    unknown_ids: list[str] = Field(description="The first 100 ids (or entity@time) not found.")
    unknown_count: int
    invalid_count: int
    problems: list[ErrorDetail]


_FILE = {"schema": {"type": "string", "format": "binary"}}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["labels"],
                    "properties": {
                        "labels": {
                            "type": "array",
                            "maxItems": MAX_LABELS,
                            "items": LabelRequest.model_json_schema(),
                        }
                    },
                }
            },
            "text/csv": _FILE,
            "application/vnd.apache.parquet": _FILE,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


@router.post(
    "/{name}/feedback",
    response_model=FeedbackResponse,
    responses=_ERRORS,
    openapi_extra=_BODY,
    summary="Send labels of served predictions",
)
async def create_feedback(
    name: str,
    request: Request,
    _caller: PredictAccess,
    settings: SettingsDep,
    watch: WatchDep,
    log: LogReaderDep,
) -> dict[str, Any]:
    """Store the true labels of predictions, by ``prediction_id`` or by entity and time.

    A label by ``entity_id`` and ``event_time`` judges the model's latest logged prediction
    for that entity at or before the time (30 days back at most). A label must be one of
    the model's two classes, by value or by name. Each prediction keeps its last label:
    within one request the last occurrence of an id wins, and a later request replaces an
    earlier one. A prediction can be labeled once the prediction log has written it
    (within ``monitoring.flush_seconds``). Nothing is stored when any label is invalid
    (422 names each: ``labels[i].label``, or ``rows[i].label`` for a file's rows).

    A CSV or Parquet body, or a form's ``file``, holds the columns ``prediction_id,label``
    or ``entity_id,event_time,label``.
    """
    await run_in_threadpool(watch.labels.check_model, name)
    media = media_type(request.headers.get("content-type", ""))
    if media in ("", "application/json"):
        items = _json_items(await request.body())
        return await run_in_threadpool(_store, watch.labels, name, items, log, "labels", "api")
    folder, max_bytes = upload_folder(settings.home), settings.queue.max_upload_bytes
    if media == FORM_MEDIA:
        async with spooled_form_file(request, folder, max_bytes) as upload:
            return await run_in_threadpool(
                _store_file, watch.labels, name, upload.path, upload.file_format, log
            )
    if media in FILE_MEDIA:
        async with spooled_body(request, folder, max_bytes) as path:
            return await run_in_threadpool(
                _store_file, watch.labels, name, path, FILE_MEDIA[media], log
            )
    raise UnsupportedMediaError(
        f"cannot take {media!r}: send JSON labels, text/csv, "
        "application/vnd.apache.parquet, or a multipart form with a 'file'"
    )


def _json_items(body: bytes) -> list[LabelItem]:
    if not body.strip():
        raise EmptyBodyError("the request body is empty", [Problem("body", "required")])
    try:
        request = FeedbackRequest.model_validate_json(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise MalformedBodyError(
                "the request body is not valid JSON", [Problem("body", "not JSON")]
            ) from None
        raise InvalidRequestError("the labels are invalid", _problems(exc)) from None
    return [
        LabelItem(item.label, item.prediction_id, item.entity_id, item.event_time)
        for item in request.labels
    ]


def _problems(exc: ValidationError) -> list[Problem]:
    """Pydantic's errors, fields named as the label store names them (``labels[3].label``)."""
    problems = []
    for error in exc.errors()[:100]:
        field = ""
        for part in error["loc"]:
            field += f"[{part}]" if isinstance(part, int) else f".{part}" if field else str(part)
        message = "field required" if error["type"] == "missing" else error["msg"]
        problems.append(Problem(field or "body", message.removeprefix("Value error, ")))
    return problems


def _store_file(
    labels: LabelStore, name: str, path: Path, file_format: str, log: LogReader
) -> dict[str, Any]:
    items = read_labels(path, file_format, MAX_LABELS)
    return _store(labels, name, items, log, "rows", "upload")


def _store(
    labels: LabelStore, name: str, items: list[LabelItem], log: LogReader, where: str, source: str
) -> dict[str, Any]:
    report = labels.add(name, items, log, source=source, strict=True, where=where)
    return report.document()
