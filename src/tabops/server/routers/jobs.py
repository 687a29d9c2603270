"""Job endpoints: submit a scoring job, follow it, download what it produced."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response

from tabops.errors import ResourceNotFoundError, UnsupportedMediaError
from tabops.jobs import Job, JobService
from tabops.security.access import Caller
from tabops.server.codecs.v1 import decode_records
from tabops.server.deps import CoreDep, JobsDep, PredictAccess, SettingsDep, request_context
from tabops.server.forms import spooled_form_file
from tabops.server.openapi import json_request_body
from tabops.server.schemas import ErrorResponse, JobAcceptedResponse, JobResponse
from tabops.server.uploads import FILE_MEDIA, FORM_MEDIA, media_type, spooled_body, upload_folder

router = APIRouter(tags=["jobs"])

_MEDIA = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
}
_FILE = {"schema": {"type": "string", "format": "binary"}}
_SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Empty or malformed body"},
    404: {"model": ErrorResponse, "description": "Unknown model or version"},
    413: {"model": ErrorResponse, "description": "More records or bytes than a job takes"},
    415: {"model": ErrorResponse, "description": "Neither JSON, CSV, Parquet nor a form upload"},
    422: {"model": ErrorResponse, "description": "Invalid records, or a file missing a column"},
}
_JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No job with that id"},
    409: {"model": ErrorResponse, "description": "The job has no such result (yet)"},
}
SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            **json_request_body(
                {
                    "type": "object",
                    "required": ["records"],
                    "properties": {"records": {"type": "array", "items": {"type": "object"}}},
                }
            )["content"],
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
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
    "/v1/models/{name}/jobs",
    status_code=202,
    response_model=JobAcceptedResponse,
    responses=_SUBMIT_ERRORS,
    openapi_extra=SUBMIT_BODY,
    summary="Submit a scoring job",
)
async def create_job(
    name: str,
    request: Request,
    core: CoreDep,
    jobs: JobsDep,
    settings: SettingsDep,
    version: str | None = None,
) -> JSONResponse:
    """Score ``{"records": [...]}``, a CSV or Parquet body, or a form upload, later.

    The version is fixed when the job is accepted (``?version=`` number or alias, else
    production), so a promotion meanwhile does not change what scores it.
    """
    context = request_context(request, "job")
    predictor = await core.resolve(context, name, version)
    owner = context.caller.key_id if context.caller else None
    media = media_type(request.headers.get("content-type", ""))
    folder, max_bytes = upload_folder(settings.home), settings.queue.max_upload_bytes
    if media in ("", "application/json"):
        records = decode_records(predictor, await request.body(), settings.queue.max_job_records)
        job = await run_in_threadpool(jobs.submit_records, predictor, records, owner=owner)
    elif media == FORM_MEDIA:
        # Streamed to a file under home as it arrives, then moved into the job's folder.
        spooling = spooled_form_file(request, folder, max_bytes)
        async with spooling as upload:
            job = await run_in_threadpool(
                jobs.submit_upload, predictor, upload.path, upload.file_format, owner=owner
            )
    elif media in FILE_MEDIA:
        async with spooled_body(request, folder, max_bytes) as path:
            job = await run_in_threadpool(
                jobs.submit_upload, predictor, path, FILE_MEDIA[media], owner=owner
            )
    else:
        raise UnsupportedMediaError(
            f"cannot take {media!r}: send JSON records, text/csv, "
            "application/vnd.apache.parquet, or a multipart form with a 'file'",
        )
    status_url = f"/v1/jobs/{job.id}"
    return JSONResponse(
        {"job_id": job.id, "status": job.status, "status_url": status_url},
        status_code=202,
        headers={"Location": status_url},
    )


@router.get("/v1/jobs", response_model=list[JobResponse], summary="List recent jobs")
def list_jobs(
    caller: PredictAccess,
    jobs: JobsDep,
    status: str | None = Query(default=None, pattern="^(queued|running|succeeded|failed)$"),
    limit: int = Query(default=50, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """The most recent jobs, newest first (without inline predictions)."""
    found = jobs.recent(status, limit, owner=owner_filter(caller))
    return [_document(jobs, job, inline=False) for job in found]


@router.get("/v1/jobs/{job_id}", response_model=JobResponse, responses=_JOB_ERRORS, summary="A job")
def get_job(job_id: str, caller: PredictAccess, jobs: JobsDep) -> dict[str, Any]:
    """A job's status and progress; its result (or where to download it) once finished."""
    return _document(jobs, jobs.get(job_id, owner_filter(caller)), inline=True)


@router.get(
    "/v1/jobs/{job_id}/result",
    response_class=FileResponse,
    responses={
        **_JOB_ERRORS,
        200: {
            "description": "The scored file, or JSON predictions for a records job",
            "content": {_MEDIA["csv"]: _FILE, _MEDIA["parquet"]: _FILE, _MEDIA["json"]: {}},
        },
    },
    summary="Download a job's result",
)
def get_job_result(job_id: str, caller: PredictAccess, jobs: JobsDep) -> FileResponse:
    """The scored output, in the format the job was given (JSON for records)."""
    job = jobs.get(job_id, owner_filter(caller))
    path = jobs.result_file(job)
    file_format = job.input_format or "json"
    return FileResponse(
        path, media_type=_MEDIA[file_format], filename=f"{job.id}-scored.{file_format}"
    )


@router.get(
    "/v1/jobs/{job_id}/errors",
    response_class=FileResponse,
    responses={
        **_JOB_ERRORS,
        200: {"description": "CSV of row, field, problem", "content": {_MEDIA["csv"]: _FILE}},
    },
    summary="Download the rows that failed validation",
)
def get_job_errors(job_id: str, caller: PredictAccess, jobs: JobsDep) -> FileResponse:
    """Every row of a file job that failed validation: row number, field and problem."""
    job = jobs.get(job_id, owner_filter(caller))
    jobs.result_file(job)  # refuses unfinished and training jobs
    path = jobs.errors_file(job)
    if path is None:
        raise ResourceNotFoundError(f"every row of job {job.id} was valid")
    return FileResponse(path, media_type="text/csv", filename=f"{job.id}-errors.csv")


@router.delete(
    "/v1/jobs/{job_id}",
    status_code=204,
    responses={
        204: {"description": "The job and its files are gone"},
        404: {"model": ErrorResponse, "description": "No job with that id"},
        409: {"model": ErrorResponse, "description": "The job is running"},
    },
    summary="Delete a job, or cancel a queued one",
)
def delete_job(job_id: str, caller: PredictAccess, jobs: JobsDep) -> Response:
    """Delete a finished job's record and files; a queued job is cancelled the same way.

    A running job cannot be deleted until it has finished (409). Finished jobs are also
    deleted automatically once they are older than the server's job retention period.
    """
    jobs.delete(job_id, owner_filter(caller))
    return Response(status_code=204)


def owner_filter(caller: Caller) -> str | None:
    """Whose jobs a caller sees: its own, or everyone's for an admin or anonymous caller.

    Anonymous callers exist only where the server lets everyone do everything.
    """
    return None if caller.is_admin or caller.key_id is None else caller.key_id


def _document(jobs: JobService, job: Job, *, inline: bool) -> dict[str, Any]:
    document = job.describe()
    result = document["result"]
    document["result_url"] = document["errors_url"] = None
    if job.kind == "score" and job.status == "succeeded":
        document["result_url"] = f"/v1/jobs/{job.id}/result"
        if result is not None and result.get("invalid_rows"):
            document["errors_url"] = f"/v1/jobs/{job.id}/errors"
        if inline and job.input_format == "json" and result is not None:
            result["predictions"] = jobs.predictions(job)  # None when only downloadable
    return document
