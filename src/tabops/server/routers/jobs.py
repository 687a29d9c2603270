"""Job endpoints: submit a scoring job, follow it, download what it produced."""

from __future__ import annotations

import tempfile
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile

from tabops.errors import (
    InvalidRequestError,
    Problem,
    ResourceNotFoundError,
    UnsupportedMediaError,
    UploadTooLargeError,
)
from tabops.jobs import Job, JobService
from tabops.server.codecs.v1 import decode_records
from tabops.server.deps import CoreDep, JobsDep, SettingsDep
from tabops.server.fastpath import context_of
from tabops.server.openapi import json_request_body
from tabops.server.schemas import ErrorResponse, JobAcceptedResponse, JobResponse

router = APIRouter(tags=["jobs"])

_FORMATS = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/parquet": "parquet",
    "application/x-parquet": "parquet",
}
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_MEDIA = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
}
_SPOOL_BYTES = 16 * 1024 * 1024
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
    predictor = await core.resolve(context_of(request.scope, "job"), name, version)
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media in ("", "application/json"):
        records = decode_records(predictor, await request.body(), settings.queue.max_job_records)
        job = await run_in_threadpool(jobs.submit_records, predictor, records)
    elif media == "multipart/form-data":
        async with request.form(max_files=1) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidRequestError("the form has no file", [Problem("file", "required")])
            file_format = _upload_format(upload)
            job = await run_in_threadpool(jobs.submit_file, predictor, upload.file, file_format)
    elif media in _FORMATS:
        with await _spool(request, settings.queue.max_upload_bytes) as spool:
            job = await run_in_threadpool(jobs.submit_file, predictor, spool, _FORMATS[media])
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


def _upload_format(upload: UploadFile) -> str:
    name = (upload.filename or "").lower()
    for suffix, file_format in _SUFFIXES.items():
        if name.endswith(suffix):
            return file_format
    media = (upload.content_type or "").lower()
    if media in _FORMATS:
        return _FORMATS[media]
    raise UnsupportedMediaError(
        f"cannot tell the format of {upload.filename!r}: name it .csv or .parquet",
        [Problem("file", "expected a .csv or .parquet file")],
    )


async def _spool(request: Request, max_bytes: int) -> tempfile.SpooledTemporaryFile[bytes]:
    """The request body in a temp file (memory up to 16 MiB), refused beyond ``max_bytes``."""
    # Returned open: the caller closes it once the job service has copied it.
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            spool.close()
            raise UploadTooLargeError(
                f"the upload exceeds the limit of {max_bytes} bytes",
                [Problem("body", f"at most {max_bytes} bytes")],
            )
        spool.write(chunk)
    spool.seek(0)
    return spool


@router.get("/v1/jobs", response_model=list[JobResponse], summary="List recent jobs")
def list_jobs(
    jobs: JobsDep,
    status: str | None = Query(default=None, pattern="^(queued|running|succeeded|failed)$"),
    limit: int = Query(default=50, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """The most recent jobs, newest first (without inline predictions)."""
    return [_document(jobs, job, inline=False) for job in jobs.recent(status, limit)]


@router.get("/v1/jobs/{job_id}", response_model=JobResponse, responses=_JOB_ERRORS, summary="A job")
def get_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    """A job's status and progress; its result (or where to download it) once finished."""
    return _document(jobs, jobs.get(job_id), inline=True)


@router.get(
    "/v1/jobs/{job_id}/result",
    responses={**_JOB_ERRORS, 200: {"description": "The scored file or JSON predictions"}},
    summary="Download a job's result",
)
def get_job_result(job_id: str, jobs: JobsDep) -> FileResponse:
    """The scored output, in the format the job was given (JSON for records)."""
    job = jobs.get(job_id)
    path = jobs.result_file(job)
    file_format = job.input_format or "json"
    return FileResponse(
        path, media_type=_MEDIA[file_format], filename=f"{job.id}-scored.{file_format}"
    )


@router.get(
    "/v1/jobs/{job_id}/errors",
    responses={**_JOB_ERRORS, 200: {"description": "CSV of row, field, problem"}},
    summary="Download the rows that failed validation",
)
def get_job_errors(job_id: str, jobs: JobsDep) -> FileResponse:
    """Every row of a file job that failed validation: row number, field and problem."""
    job = jobs.get(job_id)
    jobs.result_file(job)  # refuses unfinished and training jobs
    path = jobs.errors_file(job)
    if path is None:
        raise ResourceNotFoundError(f"every row of job {job.id} was valid")
    return FileResponse(path, media_type="text/csv", filename=f"{job.id}-errors.csv")


def _document(jobs: JobService, job: Job, *, inline: bool) -> dict[str, Any]:
    document = job.describe()
    result = document["result"]
    document["result_url"] = document["errors_url"] = None
    if job.kind == "score" and job.status == "succeeded":
        document["result_url"] = f"/v1/jobs/{job.id}/result"
        if result is not None and result.get("invalid_rows"):
            document["errors_url"] = f"/v1/jobs/{job.id}/errors"
        predictions = jobs.predictions(job) if inline else None
        if result is not None and predictions is not None:
            result["predictions"] = predictions
    return document
