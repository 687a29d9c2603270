"""The batch page: upload a CSV or Parquet file to score as a job, and follow the job.

An upload becomes the same file job ``POST /v1/models/{name}/jobs`` makes (spooled to disk
as it arrives, checked, moved into the job), owned by the page user's key. The job page
shows its status and progress (``batch.js`` polls the job's JSON every second; without
script a refresh reloads the page) and, once scored, links to the result and the rows that
failed: those answers come from the API's own download routes, with the same access checks
(a user sees only their own jobs unless admin).
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from tabops.errors import (
    DataError,
    InvalidInputError,
    InvalidRequestError,
    MalformedBodyError,
    NotAuthorizedError,
    Problem,
    TabopsError,
    UnsupportedMediaError,
    UploadTooLargeError,
)
from tabops.jobs import Job, JobService
from tabops.security.keys import PREDICT
from tabops.server.deps import get_core, get_jobs, get_settings_dependency
from tabops.server.errors import status_of
from tabops.server.forms import FILE_FIELD, spooled_form
from tabops.server.routers.jobs import get_job_errors, get_job_result, owner_filter
from tabops.server.ui.render import UiUser, UiUserDep, render, see_other
from tabops.server.uploads import FORM_MEDIA, file_format_of, media_type, upload_folder

router = APIRouter()

RECENT_JOBS = 10
"""Jobs of the model listed on its batch page."""
_RECENT_SCAN = 100  # recent jobs of the user read to find the model's
_MAX_PROBLEMS = 20  # problems of a job shown on its page (all are in the errors file)
# Refusals of an upload shown on the batch page itself; others are error pages.
_UPLOAD_ERRORS = (
    DataError,
    InvalidInputError,
    InvalidRequestError,
    MalformedBodyError,
    NotAuthorizedError,
    UnsupportedMediaError,
    UploadTooLargeError,
)


@router.get("/models/{name}/batch", response_class=HTMLResponse)
async def show_batch_form(
    name: str, request: Request, user: UiUserDep, version: str | None = None
) -> HTMLResponse:
    """The upload form for a model (production unless ``version``) and its recent jobs."""
    await get_core(request).resolve(user.context, name, version or None)
    return await _page(request, user, name, version or "")


@router.post("/models/{name}/batch", response_model=None)
async def submit_batch_file(
    name: str, request: Request, user: UiUserDep
) -> RedirectResponse | HTMLResponse:
    """Queue the uploaded file as a scoring job; on to the job's page (or the refusal shown)."""
    settings = get_settings_dependency(request)
    jobs = get_jobs(request)
    core = get_core(request)
    core.authorize(user.context, name, PREDICT)
    ref = request.query_params.get("version") or None
    try:
        if media_type(request.headers.get("content-type", "")) != FORM_MEDIA:
            raise UnsupportedMediaError(
                "this page takes a form with a file",
                [Problem("Content-Type", f"send {FORM_MEDIA}")],
            )
        folder, max_bytes = upload_folder(settings.home), settings.queue.max_upload_bytes
        spooling = spooled_form(
            request, folder, max_bytes, (FILE_FIELD,), check_file=_csv_or_parquet
        )
        async with spooling as form:
            _check_csrf(user, form.fields.get("csrf", []))
            ref = (form.fields.get("version") or [ref or ""])[0] or None
            upload = form.files.get(FILE_FIELD)
            if upload is None or (not upload.filename and upload.path.stat().st_size == 0):
                problems = [Problem(FILE_FIELD, "required")]
                raise InvalidRequestError("choose a file to score", problems)
            file_format = file_format_of(upload.filename, upload.media_type)
            if file_format is None:
                raise UnsupportedMediaError(
                    "cannot tell the file's format: name it .csv or .parquet",
                    [Problem(FILE_FIELD, "expected a .csv or .parquet file")],
                )
            predictor = await core.resolve(user.context, name, ref)
            job = await run_in_threadpool(
                jobs.submit_upload, predictor, upload.path, file_format, owner=user.caller.key_id
            )
    except _UPLOAD_ERRORS as exc:
        return await _page(request, user, name, ref or "", error=exc)
    return see_other(request, f"/ui/jobs/{job.id}")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def show_job(job_id: str, request: Request, user: UiUserDep) -> HTMLResponse:
    """A job's status and progress; its downloads once it has succeeded."""
    job = await _job(request, user, job_id)
    values = {
        "job": _job_view(request, job),
        "nav_model": job.model,
        "status_url": str(request.url_for("get_job_status", job_id=job.id).path),
    }
    return render(request, "batch_job.html.j2", values, user=user)


@router.get("/jobs/{job_id}/status")
async def get_job_status(job_id: str, request: Request, user: UiUserDep) -> dict[str, Any]:
    """The job's state as the job page shows it, for ``batch.js`` (which has the session only)."""
    return _job_view(request, await _job(request, user, job_id))


@router.get("/jobs/{job_id}/result", response_class=FileResponse)
async def download_job_result(job_id: str, request: Request, user: UiUserDep) -> FileResponse:
    """``GET /v1/jobs/{job_id}/result``, for the page's session."""
    get_core(request).authorize(user.context, None, PREDICT)
    return await run_in_threadpool(get_job_result, job_id, user.caller, get_jobs(request))


@router.get("/jobs/{job_id}/errors", response_class=FileResponse)
async def download_job_errors(job_id: str, request: Request, user: UiUserDep) -> FileResponse:
    """``GET /v1/jobs/{job_id}/errors``, for the page's session."""
    get_core(request).authorize(user.context, None, PREDICT)
    return await run_in_threadpool(get_job_errors, job_id, user.caller, get_jobs(request))


def _csv_or_parquet(field: str, filename: str, media: str) -> None:
    """Refuse a file whose name or type says neither CSV nor Parquet, before it is spooled."""
    if filename and file_format_of(filename, media) is None:
        raise UnsupportedMediaError(
            f"cannot tell the format of {filename!r}: name it .csv or .parquet",
            [Problem(field, "expected a .csv or .parquet file")],
        )


def _check_csrf(user: UiUser, sent: list[str]) -> None:
    """As ``checked_form`` checks a form read whole: the form's one token is the user's."""
    if len(sent) != 1 or not hmac.compare_digest(sent[0].encode(), user.csrf.encode()):
        raise NotAuthorizedError(
            "the form is out of date or did not come from this site; reload the page and retry",
            [Problem("csrf", "missing or not this session's token")],
        )


async def _job(request: Request, user: UiUser, job_id: str) -> Job:
    """The job, if the user may see it (their own, or any for an admin), as the API finds it."""
    get_core(request).authorize(user.context, None, PREDICT)
    jobs = get_jobs(request)
    return await run_in_threadpool(jobs.get, job_id, owner_filter(user.caller))


def _job_view(request: Request, job: Job) -> dict[str, Any]:
    """What the job page and its poll show: state, counts, problems and download links."""
    document = job.describe()
    result = document["result"] or {}
    is_scored = job.kind == "score" and job.status == "succeeded"
    problems = result.get("problems") or []
    return {
        "job_id": job.id,
        "model": job.model,
        "version": job.version,
        "status": job.status,
        "is_finished": job.is_finished,
        "progress": round(float(job.progress), 4),
        "percent": f"{float(job.progress) * 100:.0f}%",
        "created": str(document["created"] or ""),
        "started": str(document["started"] or ""),
        "finished": str(document["finished"] or ""),
        "input_format": job.input_format,
        "rows": result.get("rows"),
        "positives": result.get("positives"),
        "invalid_rows": result.get("invalid_rows"),
        "problems": problems[:_MAX_PROBLEMS],
        "more_problems": max(len(problems) - _MAX_PROBLEMS, 0),
        "error": job.error,
        "result_url": _path(request, "download_job_result", job.id) if is_scored else None,
        "errors_url": (
            _path(request, "download_job_errors", job.id)
            if is_scored and result.get("invalid_rows") and job.input_format != "json"
            else None
        ),
        "page_url": _path(request, "show_job", job.id),
    }


def _path(request: Request, route: str, job_id: str) -> str:
    return str(request.url_for(route, job_id=job_id).path)


async def _page(
    request: Request,
    user: UiUser,
    name: str,
    ref: str,
    *,
    error: TabopsError | None = None,
) -> HTMLResponse:
    """The batch page of a model: its upload form, a refusal if any, and the recent jobs."""
    jobs = get_jobs(request)
    recent = await run_in_threadpool(_recent, jobs, user, name)
    action = str(request.url_for("submit_batch_file", name=name).path)
    values = {
        "model": name,
        "nav_model": name,
        "ref": ref,
        "form_action": action,
        "error": error.message if error is not None else None,
        "problems": [f"{p.field}: {p.problem}" for p in error.problems] if error else [],
        "jobs": [
            {
                "job_id": job.id,
                "status": job.status,
                "version": job.version,
                "created": str(job.created),
                "url": _path(request, "show_job", job.id),
            }
            for job in recent
        ],
    }
    status_code = status_of(error)[0] if error is not None else 200
    return render(request, "batch.html.j2", values, user=user, status_code=status_code)


def _recent(jobs: JobService, user: UiUser, name: str) -> list[Job]:
    found = jobs.recent(None, _RECENT_SCAN, owner=owner_filter(user.caller))
    return [job for job in found if job.model == name and job.kind == "score"][:RECENT_JOBS]


__all__ = ["RECENT_JOBS", "router"]
